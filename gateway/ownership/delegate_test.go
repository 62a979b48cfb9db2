package ownership

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/gateway/store"
)

// The delegate source hands its sink only the device's records up to the
// delegation's end, and moves the cursor past other devices' records so
// that a delegation never holds back pruning of the outbox.
func TestDelegateSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	devs := make([]store.Device, 2)
	for i := range devs {
		der := []byte(fmt.Sprintf("idevid-%d", i))
		devs[i] = store.Device{ID: sha256.Sum256(der), Serial: fmt.Sprintf("SN-%d", i), IDevID: der, State: store.StateEnrolled}
	}
	a, b := devs[0], devs[1]
	heads := map[store.DeviceID][]byte{}
	seq := uint64(0)
	put := func(d store.Device, typ string, more func(*store.Tx) error) {
		t.Helper()
		seq++
		c := []byte(fmt.Sprintf("cose-%d", seq))
		r := store.Record{Seq: seq, Device: d.ID, Serial: d.Serial, Type: typ, Time: time.Unix(1_700_000_000, 0), ID: sha256.Sum256(c), COSE: c}
		err := s.Update(ctx, func(tx *store.Tx) error {
			if more != nil {
				if err := more(tx); err != nil {
					return err
				}
			}
			return tx.AppendRecord(r, heads[d.ID])
		})
		if err != nil {
			t.Fatal(err)
		}
		heads[d.ID] = r.ID[:]
	}
	if err := s.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutDevice(a); err != nil {
			return err
		}
		return tx.PutDevice(b)
	}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("tok"))
	const sink = "delegate-x"
	put(a, "delegate", func(tx *store.Tx) error {
		return tx.AddDelegation(store.Delegation{ID: "x", Device: a.ID, Sink: sink, Config: "{}", Until: time.Now().Add(time.Hour), TokenHash: h[:]})
	})
	put(b, "checkin", nil)
	src := &delegateSource{s: s, dev: a.ID}
	recs, err := src.Next(ctx, sink, 10)
	if err != nil || len(recs) != 1 || recs[0].Type != "delegate" {
		t.Fatalf("first batch %+v, %v", recs, err)
	}
	if err := src.Ack(ctx, sink, recs[0].Pos); err != nil {
		t.Fatal(err)
	}
	// Only b's record is left: Next returns nothing and skips past it.
	if recs, err := src.Next(ctx, sink, 10); err != nil || len(recs) != 0 {
		t.Fatalf("second batch %+v, %v", recs, err)
	}
	head, _ := s.OutboxHead(ctx)
	if cur, _ := s.OutboxCursor(ctx, sink); cur != head {
		t.Fatalf("cursor %d, want the head %d", cur, head)
	}
	// The end: the source learns it and stops there.
	put(a, "delegate", func(tx *store.Tx) error { _, err := tx.EndDelegation("x"); return err })
	put(a, "checkin", nil)
	recs, err = src.Next(ctx, sink, 10)
	if err != nil || len(recs) != 1 || recs[0].Type != "delegate" {
		t.Fatalf("after the end %+v, %v", recs, err)
	}
	if err := src.Ack(ctx, sink, recs[0].Pos); err != nil {
		t.Fatal(err)
	}
	if recs, err := src.Next(ctx, sink, 10); err != nil || len(recs) != 0 {
		t.Fatalf("past the end %+v, %v", recs, err)
	}
	m := &Manager{cfg: Config{Store: s}}
	if sinks, err := m.DeliverySinks(ctx); err != nil || len(sinks) != 0 {
		t.Fatalf("a delivered delegation still holds back pruning: %v, %v", sinks, err)
	}
}
