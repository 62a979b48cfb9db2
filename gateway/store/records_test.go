package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"
)

func rec(seq uint64, d Device, typ string) Record {
	cose := []byte(fmt.Sprintf("cose-%d", seq))
	return Record{Seq: seq, Device: d.ID, Type: typ, Time: time.Unix(1_700_000_000+int64(seq), 0), ID: sha256.Sum256(cose), COSE: cose}
}

func TestRecordChainAndOutbox(t *testing.T) {
	s := open(t, "")
	ctx := ctxT(t)
	a, b := dev(1), dev(2)
	put := func(r Record, prev []byte) error {
		return s.Update(ctx, func(tx *Tx) error { return tx.AppendRecord(r, prev) })
	}
	r1, r2, r3 := rec(1, a, "enroll"), rec(2, b, "enroll"), rec(3, a, "checkin")
	for _, step := range []struct {
		r    Record
		prev []byte
	}{{r1, nil}, {r2, nil}, {r3, r1.ID[:]}} {
		if err := put(step.r, step.prev); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.RecordsCommitted():
	default:
		t.Error("no commit notification")
	}
	// A fork is refused: wrong prev, or a second "first" record.
	if err := put(rec(4, a, "checkin"), r1.ID[:]); !errors.Is(err, ErrConflict) {
		t.Errorf("fork with stale prev: %v", err)
	}
	if err := put(rec(5, a, "checkin"), nil); !errors.Is(err, ErrConflict) {
		t.Errorf("second first record: %v", err)
	}
	head, seq, ok, err := s.ChainHead(ctx, a.ID)
	if err != nil || !ok || seq != 3 || string(head) != string(r3.ID[:]) {
		t.Fatalf("head %x %d %v %v", head, seq, ok, err)
	}
	if last, _ := s.LastSeq(ctx); last != 3 {
		t.Errorf("last seq %d", last)
	}
	// Two sinks: one delivers everything, one parks record 2.
	if n, _, _ := s.OutboxBacklog(ctx, "mqtt"); n != 3 {
		t.Errorf("backlog %d", n)
	}
	e, err := s.OutboxNext(ctx, "mqtt", 10)
	if err != nil || len(e) != 3 || e[0].Seq != 1 || e[2].Seq != 3 || string(e[1].COSE) != "cose-2" {
		t.Fatalf("next %+v %v", e, err)
	}
	if err := s.OutboxAck(ctx, "mqtt", e[2].Pos); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxPark(ctx, "hook", 2, "400 bad request"); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.OutboxNext(ctx, "hook", 10); len(e) != 2 || e[1].Seq != 3 {
		t.Errorf("parked record not skipped: %+v", e)
	}
	if err := s.OutboxAck(ctx, "mqtt", e[0].Pos); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.OutboxNext(ctx, "mqtt", 10); len(e) != 0 {
		t.Errorf("cursor moved back: %+v", e)
	}
	if p, _ := s.ParkedRecords(ctx, "", 0); len(p) != 1 || p[0].Reason != "400 bad request" {
		t.Errorf("parked %+v", p)
	}
	// Prune: nothing both sinks passed; then hook acks 1, so row 1 goes.
	res, err := s.PruneOutbox(ctx, []string{"mqtt", "hook"}, Retention{})
	if err != nil || res.Delivered != 0 || res.Dropped != 0 {
		t.Fatalf("prune %+v %v", res, err)
	}
	s.OutboxAck(ctx, "hook", e[0].Pos)
	if res, _ := s.PruneOutbox(ctx, []string{"mqtt", "hook"}, Retention{}); res.Delivered != 1 {
		t.Errorf("prune delivered %+v", res)
	}
	// A bound of one row drops records 2 (parked for hook, delivered to
	// mqtt) and 3 (undelivered to hook): one lost delivery, counted.
	if err := put(rec(6, b, "checkin"), r2.ID[:]); err != nil {
		t.Fatal(err)
	}
	res, err = s.PruneOutbox(ctx, []string{"mqtt", "hook"}, Retention{MaxRecords: 1})
	if err != nil || res.DroppedBySink["hook"] != 1 || res.Dropped != 1 {
		t.Fatalf("bounded prune %+v %v", res, err)
	}
	if e, _ := s.OutboxNext(ctx, "hook", 10); len(e) != 1 || e[0].Seq != 6 {
		t.Errorf("after drop, hook sees %+v", e)
	}
	// The history keeps every record.
	if all, _ := s.Records(ctx, RecordFilter{}); len(all) != 4 {
		t.Errorf("records %d", len(all))
	}
	if mine, _ := s.Records(ctx, RecordFilter{Device: &a.ID}); len(mine) != 2 {
		t.Errorf("device records %d", len(mine))
	}
}

func TestOSCOREContextAndSchedule(t *testing.T) {
	s := open(t, "")
	ctx := ctxT(t)
	d := dev(1)
	now := time.Unix(1_700_000_000, 0)
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		return tx.PutOSCOREContext(OSCOREContext{Device: d.ID, KID: []byte{1}, GatewayID: []byte{}, MasterSecret: make([]byte, 16), MasterSalt: make([]byte, 8)})
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OSCOREContextByKID(ctx, []byte{1})
	if err != nil || c.Device != d.ID || c.HasReplay || c.HasSenderSeq {
		t.Fatalf("context %+v %v", c, err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		if _, _, ok, err := tx.ReplayWindow(d.ID); err != nil || ok {
			return fmt.Errorf("fresh window: %v %v", ok, err)
		}
		return tx.SetCheckin(d.ID, now, now.Add(time.Hour), now.Add(2*time.Hour), 42, 0b101)
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.OSCOREContext(ctx, d.ID); !c.HasReplay || c.ReplayHigh != 42 || c.ReplayBitmap != 5 {
		t.Errorf("replay state %+v", c)
	}
	if _, err := s.OSCOREContextByKID(ctx, []byte{9}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown kid: %v", err)
	}
	if od, _ := s.Overdue(ctx, now.Add(time.Hour), 0); len(od) != 0 {
		t.Errorf("overdue too early: %v", od)
	}
	od, err := s.Overdue(ctx, now.Add(3*time.Hour), 0)
	if err != nil || len(od) != 1 || od[0].OverdueAt != now.Add(2*time.Hour) {
		t.Fatalf("overdue %+v %v", od, err)
	}
	var applied bool
	s.Update(ctx, func(tx *Tx) error {
		applied, err = tx.MarkOverdue(d.ID, od[0].OverdueAt, 1, now.Add(3*time.Hour))
		return err
	})
	if !applied {
		t.Error("overdue not applied")
	}
	// A stale deadline (a check-in moved it) is not applied.
	s.Update(ctx, func(tx *Tx) error {
		applied, err = tx.MarkOverdue(d.ID, od[0].OverdueAt, 2, now.Add(4*time.Hour))
		return err
	})
	if applied {
		t.Error("stale overdue applied")
	}
	if next, _ := s.NextOverdue(ctx); !next.Equal(now.Add(3 * time.Hour)) {
		t.Errorf("next overdue %v", next)
	}
	// Re-provisioning replaces the context and its replay state.
	s.Update(ctx, func(tx *Tx) error {
		return tx.PutOSCOREContext(OSCOREContext{Device: d.ID, KID: []byte{2}, GatewayID: []byte{}, MasterSecret: make([]byte, 16), MasterSalt: make([]byte, 8)})
	})
	if c, _ := s.OSCOREContext(ctx, d.ID); c.HasReplay || string(c.KID) != "\x02" {
		t.Errorf("after re-provisioning %+v", c)
	}
}
