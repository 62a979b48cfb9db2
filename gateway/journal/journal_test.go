package journal

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func checkin(n uint64) *record.CheckInBody {
	return &record.CheckInBody{Uptime: n, Firmware: "1.0", Reboots: 1}
}

func devOf(i int) Device {
	return Device{ID: sha256.Sum256([]byte(fmt.Sprint("dev", i))), Serial: fmt.Sprint("SN-", i)}
}

// Concurrent appends for many devices commit a chain that verifies, with
// strictly increasing sequence numbers across a restart; a failed apply
// leaves nothing and does not break the device's chain.
func TestAppendChainsAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "gw.db")
	key, _ := pki.GenerateKey(nil)
	run := func(rounds int) {
		s, err := store.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		j, err := New(ctx, s, key)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for d := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					if _, err := j.Append(ctx, devOf(d), checkin(uint64(i)), nil); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		errBoom := errors.New("boom")
		if _, err := j.Append(ctx, devOf(0), checkin(99), func(*store.Tx) error { return errBoom }); !errors.Is(err, errBoom) {
			t.Errorf("failing apply: %v", err)
		}
		if _, err := j.Append(ctx, devOf(0), checkin(100), nil); err != nil {
			t.Errorf("append after a failed one: %v", err)
		}
	}
	run(5)
	run(3) // a restart: new journal, same store

	s, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Records(ctx, store.RecordFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if want := 20*8 + 2; len(recs) != want {
		t.Fatalf("%d records, want %d", len(recs), want)
	}
	var signed []*record.Signed
	for _, r := range recs {
		sr, err := record.Parse(r.COSE)
		if err != nil {
			t.Fatal(err)
		}
		if err := sr.Verify(key.Public()); err != nil {
			t.Fatal(err)
		}
		signed = append(signed, sr)
	}
	if err := record.VerifyChain(signed); err != nil {
		t.Fatalf("chain: %v", err)
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(b.TempDir(), "gw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key, _ := pki.GenerateKey(nil)
	j, err := New(ctx, s, key)
	if err != nil {
		b.Fatal(err)
	}
	var n sync.Mutex
	next := 0
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n.Lock()
		d := devOf(next)
		next++
		n.Unlock()
		i := uint64(0)
		for pb.Next() {
			i++
			if _, err := j.Append(ctx, d, checkin(i), nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// parallelism × GOMAXPROCS goroutines append at once: the group commit's
// batch size, as many concurrent check-ins would make it.
const parallelism = 256
