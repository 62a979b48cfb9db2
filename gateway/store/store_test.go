package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, path string) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "gw.db")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dev(i int) Device {
	der := []byte(fmt.Sprintf("idevid-%d", i))
	return Device{ID: sha256.Sum256(der), Serial: fmt.Sprintf("SN-%d", i), IDevID: der, State: StateVoucher}
}

// Concurrent updates share commits; a failing update rolls back only its
// own writes; every successful update is visible after Update returns.
func TestGroupCommitIsolation(t *testing.T) {
	s := open(t, "")
	ctx := ctxT(t)
	const n = 200
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	var hooks atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx *Tx) error {
				if err := tx.PutDevice(dev(i)); err != nil {
					return err
				}
				tx.OnCommit(func() { hooks.Add(1) })
				if i%10 == 0 {
					return errBoom
				}
				return nil
			})
			if i%10 == 0 {
				if !errors.Is(err, errBoom) {
					t.Errorf("update %d: %v, want boom", i, err)
				}
				return
			}
			if err != nil {
				t.Errorf("update %d: %v", i, err)
				return
			}
			if _, err := s.Device(ctx, dev(i).ID); err != nil {
				t.Errorf("device %d not visible after Update: %v", i, err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < n; i += 10 {
		if _, err := s.Device(ctx, dev(i).ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("failed update %d left a device: %v", i, err)
		}
	}
	if got := hooks.Load(); got != n-n/10 {
		t.Errorf("OnCommit ran %d times, want %d", got, n-n/10)
	}
	st := s.Stats()
	if st.Ops != n-n/10 || st.Failed != n/10 {
		t.Errorf("stats %+v", st)
	}
	if st.Commits >= n {
		t.Logf("no batching happened (%d commits for %d ops)", st.Commits, n)
	}
}

func TestPanicInUpdateIsContained(t *testing.T) {
	s := open(t, "")
	ctx := ctxT(t)
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutDevice(dev(1)); err != nil {
			return err
		}
		panic("bug")
	})
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Device(ctx, dev(1).ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("panicking update left state: %v", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutDevice(dev(2)) }); err != nil {
		t.Fatalf("store unusable after panic: %v", err)
	}
}

func TestReopenKeepsDataAndClosedRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.db")
	s := open(t, path)
	ctx := ctxT(t)
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutDevice(dev(7)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Update(ctx, func(tx *Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("update after close: %v", err)
	}
	s2 := open(t, path)
	d, err := s2.Device(ctx, dev(7).ID)
	if err != nil || d.Serial != "SN-7" || d.State != StateVoucher {
		t.Fatalf("after reopen: %+v %v", d, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.db")
	s := open(t, path)
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctxT(t), path); !errors.Is(err, ErrSchema) {
		t.Errorf("open newer schema: %v", err)
	}
}

func TestOnboardingRows(t *testing.T) {
	s := open(t, "")
	ctx := ctxT(t)
	d := dev(1)
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		if err := tx.AddVoucherExchange(VoucherExchange{Device: d.ID, Nonce: []byte{1, 2}, PVR: []byte("pvr"), RVR: []byte("rvr"), Voucher: []byte("v"), MASAURL: "https://m"}); err != nil {
			return err
		}
		if err := tx.AddTelemetry(Telemetry{Device: d.ID, Kind: VoucherStatus, Status: true, Body: []byte{0xa0}}); err != nil {
			return err
		}
		return tx.SetState(d.ID, StateVoucherAccepted)
	})
	if err != nil {
		t.Fatal(err)
	}
	x, err := s.LatestVoucher(ctx, d.ID)
	if err != nil || string(x.PVR) != "pvr" || string(x.RVR) != "rvr" || string(x.Voucher) != "v" {
		t.Fatalf("voucher: %+v %v", x, err)
	}
	tm, err := s.Telemetry(ctx, d.ID)
	if err != nil || len(tm) != 1 || !tm[0].Status {
		t.Fatalf("telemetry: %+v %v", tm, err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.SetState(dev(99).ID, StateActive) }); !errors.Is(err, ErrNotFound) {
		t.Errorf("set state of unknown device: %v", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.AddExpected(Expected{Serial: "SN-1"}) }); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.IsExpected(ctx, "SN-1", nil); !ok || err != nil {
		t.Errorf("expected by serial: %v %v", ok, err)
	}
	if ok, _ := s.IsExpected(ctx, "SN-2", []byte("x")); ok {
		t.Error("unexpected device reported expected")
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.AddExpected(Expected{}) }); !errors.Is(err, ErrConflict) {
		t.Errorf("empty expected: %v", err)
	}
}

func BenchmarkUpdateParallel(b *testing.B) {
	s := open(b, "")
	ctx := context.Background()
	var i atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := int(i.Add(1))
			if err := s.Update(ctx, func(tx *Tx) error { return tx.PutDevice(dev(n)) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	st := s.Stats()
	b.ReportMetric(float64(st.Ops)/float64(max(st.Commits, 1)), "ops/commit")
}
