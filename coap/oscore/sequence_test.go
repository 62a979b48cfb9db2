package oscore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

func clientParams(t *testing.T) Params {
	return loadVectors(t).context(t, "C.1.1").params()
}

// TestNoNonceReuseAcrossCrashes simulates crashes: the in-memory context is
// dropped after a random number of messages and a new one is built from the
// store (Appendix B.1.1). No Partial IV may ever repeat. With lost writes,
// one periodic store per boot is acknowledged but not kept, which F = K
// covers; the store made right after a restart is kept (a lost one cannot
// be covered by any F: two restarts from the same stored number would start
// at the same number).
func TestNoNonceReuseAcrossCrashes(t *testing.T) {
	tests := []struct {
		name     string
		k, f     uint64
		dropSome bool
	}{
		{"K=1 F=1", 1, 1, false},
		{"K=4 F=4", 4, 4, false},
		{"defaults", DefaultPersistInterval, DefaultPersistGap, false},
		{"K=4 F=K with lost writes", 4, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			store := newMemSeqStore()
			used := map[uint64]bool{}
			for boot := 0; boot < 50; boot++ {
				c, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(tt.k, tt.f))
				if err != nil {
					t.Fatal(err)
				}
				drop := 0
				if tt.dropSome {
					drop = 2 + r.IntN(3)
				}
				store.reset(drop)
				n := r.IntN(int(5 * tt.k))
				for i := 0; i < n; i++ {
					_, ex, err := c.ProtectRequest(getRequest())
					if err != nil {
						t.Fatal(err)
					}
					if used[ex.Seq()] {
						t.Fatalf("boot %d: Partial IV %d reused", boot, ex.Seq())
					}
					used[ex.Seq()] = true
				}
				// crash: c is dropped without any shutdown hook
			}
		})
	}
}

// TestCrashRightAfterRestart: the first number after a restart is stored
// before it is used, so a second crash before K more messages cannot lead
// to its reuse.
func TestCrashRightAfterRestart(t *testing.T) {
	store := newMemSeqStore()
	seen := map[uint64]bool{}
	for boot := 0; boot < 5; boot++ {
		c, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(10, 1))
		if err != nil {
			t.Fatal(err)
		}
		_, ex, err := c.ProtectRequest(getRequest())
		if err != nil {
			t.Fatal(err)
		}
		if seen[ex.Seq()] {
			t.Fatalf("boot %d reused %d", boot, ex.Seq())
		}
		seen[ex.Seq()] = true
	}
}

func TestResumeValue(t *testing.T) {
	store := newMemSeqStore()
	c, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(8, 3))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ { // uses 0..9, stores 0 and 8
		if _, _, err := c.ProtectRequest(getRequest()); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, _ := store.Load(c.StateID()); got != 8 {
		t.Fatalf("stored %d, want 8", got)
	}
	c2, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(8, 3))
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.SenderSequence(); got != 8+8+3 {
		t.Fatalf("resumed at %d, want SSN1+K+F = 19", got)
	}
}

func TestSequenceStoreFailure(t *testing.T) {
	store := newMemSeqStore()
	boom := errors.New("disk unplugged")
	store.fail = boom
	c, err := NewContext(clientParams(t), WithSequenceStore(store))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ProtectRequest(getRequest()); !errors.Is(err, ErrSequenceStore) || !errors.Is(err, boom) {
		t.Fatalf("error = %v, want ErrSequenceStore wrapping the store error", err)
	}
	if c.SenderSequence() != 0 {
		t.Fatalf("sequence advanced to %d without being stored", c.SenderSequence())
	}
	store.fail = nil
	if _, ex, err := c.ProtectRequest(getRequest()); err != nil || ex.Seq() != 0 {
		t.Fatalf("after recovery: %v", err)
	}
}

type failingLoad struct{ memSeqStore }

var errLoad = errors.New("store offline")

func (*failingLoad) Load(string) (uint64, bool, error) { return 0, false, errLoad }

func TestSequenceStoreLoadFailure(t *testing.T) {
	if _, err := NewContext(clientParams(t), WithSequenceStore(&failingLoad{})); !errors.Is(err, ErrSequenceStore) || !errors.Is(err, errLoad) {
		t.Fatalf("error = %v", err)
	}
}

func TestSequenceExhausted(t *testing.T) {
	client, server := pair(t, []ContextOption{WithSenderSequence(1<<40 - 1)}, []ContextOption{WithSenderSequence(1<<40 - 1)})
	m, ex, err := client.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ex.PartialIV(), []byte{0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("last Partial IV = %x", ex.PartialIV())
	}
	if _, _, err := client.ProtectRequest(getRequest()); !errors.Is(err, ErrSequenceExhausted) {
		t.Fatalf("error = %v, want ErrSequenceExhausted", err)
	}
	_, sex, err := server.UnprotectRequest(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProtectResponse(helloResponse(), sex, true); err != nil {
		t.Fatalf("last server PIV: %v", err)
	}
	if _, err := server.ProtectResponse(helloResponse(), sex, true); !errors.Is(err, ErrSequenceExhausted) {
		t.Fatalf("server error = %v, want ErrSequenceExhausted", err)
	}
	// Without a Partial IV the request nonce is used; but a second response
	// to the same request must not reuse it either.
	if _, err := server.ProtectResponse(helloResponse(), sex, false); !errors.Is(err, ErrSequenceExhausted) {
		t.Fatalf("server error = %v, want ErrSequenceExhausted", err)
	}
	if _, err := NewContext(clientParams(t), WithSenderSequence(1<<40)); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("WithSenderSequence(2^40) = %v", err)
	}
}

func TestConcurrentProtectUniquePIVs(t *testing.T) {
	store := newMemSeqStore()
	c, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(16, 16))
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 8, 200
	var (
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				_, ex, err := c.ProtectRequest(getRequest())
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				dup := seen[ex.Seq()]
				seen[ex.Seq()] = true
				mu.Unlock()
				if dup {
					errs <- errors.New("duplicate Partial IV")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != workers*per {
		t.Fatalf("%d distinct PIVs, want %d", len(seen), workers*per)
	}
}

func TestConcurrentReplayOnlyOneWins(t *testing.T) {
	client, server := pair(t, nil, nil)
	m, _, err := client.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		oks int
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := server.UnprotectRequest(m)
			if err == nil {
				mu.Lock()
				oks++
				mu.Unlock()
			} else if !errors.Is(err, ErrReplay) {
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	if oks != 1 {
		t.Fatalf("%d copies accepted, want exactly 1", oks)
	}
}

// TestGapCoversOneLostWrite walks the case F exists for (Appendix B.1.1):
// the store of 4 is acknowledged but lost, 4..7 are used, the device
// crashes. Resuming at 0+K+F must not land on a used number: F = 1 would
// reuse 5, F = K does not.
func TestGapCoversOneLostWrite(t *testing.T) {
	tests := []struct {
		name   string
		f      uint64
		resume uint64
		reuse  bool
	}{
		{"F=1 reuses", 1, 5, true},
		{"F=K is safe", 4, 8, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemSeqStore()
			store.reset(2) // the periodic store of 4 is lost
			c, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(4, tt.f))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 8; i++ {
				if _, _, err := c.ProtectRequest(getRequest()); err != nil {
					t.Fatal(err)
				}
			}
			c2, err := NewContext(clientParams(t), WithSequenceStore(store), WithPersistInterval(4, tt.f))
			if err != nil {
				t.Fatal(err)
			}
			got := c2.SenderSequence()
			if got != tt.resume {
				t.Fatalf("resumed at %d, want %d", got, tt.resume)
			}
			if reused := got < 8; reused != tt.reuse {
				t.Fatalf("reuse = %v, want %v", reused, tt.reuse)
			}
		})
	}
}
