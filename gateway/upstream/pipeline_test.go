package upstream

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestPipeline(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		devices int
		window  int
		// fate decides each attempt's outcome by Seq.
		fate func(seq uint64) State
		// want is the expected state per Seq (index seq-1).
		want func(seq uint64, dev int) State
	}{
		{
			name: "all delivered, many devices", n: 500, devices: 50, window: 16,
			fate: func(uint64) State { return Delivered },
			want: func(uint64, int) State { return Delivered },
		},
		{
			name: "one device is strictly serial", n: 50, devices: 1, window: 16,
			fate: func(uint64) State { return Delivered },
			want: func(uint64, int) State { return Delivered },
		},
		{
			name: "parked records do not block their device", n: 60, devices: 3, window: 8,
			fate: func(seq uint64) State {
				if seq%5 == 0 {
					return Parked
				}
				return Delivered
			},
			want: func(seq uint64, _ int) State {
				if seq%5 == 0 {
					return Parked
				}
				return Delivered
			},
		},
		{
			name: "a retry stops the batch and its device", n: 40, devices: 4, window: 1,
			fate: func(seq uint64) State {
				if seq == 10 {
					return Retry
				}
				return Delivered
			},
			// window 1 is sequential: 1..9 delivered, 10 retry, nothing after starts.
			want: func(seq uint64, _ int) State {
				if seq < 10 {
					return Delivered
				}
				return Retry
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := testRecords(tt.n, tt.devices)
			var (
				mu       sync.Mutex
				inflight = make(map[[32]byte]bool)
				order    = make(map[[32]byte][]uint64)
				cur, top int
			)
			rng := rand.New(rand.NewPCG(1, 2))
			var rngMu sync.Mutex
			send := func(ctx context.Context, r Record) Outcome {
				mu.Lock()
				if inflight[r.Device] {
					mu.Unlock()
					t.Errorf("seq %d: its device already has a record in flight", r.Seq)
					return Outcome{State: Retry}
				}
				inflight[r.Device] = true
				order[r.Device] = append(order[r.Device], r.Seq)
				cur++
				top = max(top, cur)
				mu.Unlock()
				rngMu.Lock()
				d := time.Duration(rng.IntN(200)) * time.Microsecond
				rngMu.Unlock()
				time.Sleep(d)
				mu.Lock()
				inflight[r.Device] = false
				cur--
				mu.Unlock()
				return Outcome{State: tt.fate(r.Seq)}
			}
			out := make([]Outcome, len(recs))
			pipeline(context.Background(), recs, tt.window, out, send)

			if top > tt.window {
				t.Errorf("%d sends in flight, window %d", top, tt.window)
			}
			for dev, seqs := range order {
				for i := 1; i < len(seqs); i++ {
					if seqs[i] < seqs[i-1] {
						t.Fatalf("device %x: seq %d sent after %d", dev[:4], seqs[i], seqs[i-1])
					}
				}
			}
			for i, r := range recs {
				if got, want := out[i].State, tt.want(r.Seq, i%tt.devices); got != want {
					t.Errorf("seq %d: %v, want %v (%s)", r.Seq, got, want, out[i].Reason)
				}
			}
		})
	}
}

func TestPipelineRetryHoldsBackItsDevice(t *testing.T) {
	// Two devices, wide window: device A's first record fails, so none of
	// A's later records may be sent, whatever happens to B.
	recs := testRecords(20, 2)
	var mu sync.Mutex
	sent := make(map[uint64]bool)
	out := make([]Outcome, len(recs))
	pipeline(context.Background(), recs, 8, out, func(_ context.Context, r Record) Outcome {
		mu.Lock()
		sent[r.Seq] = true
		mu.Unlock()
		if r.Seq == 1 {
			time.Sleep(5 * time.Millisecond)
			return Outcome{State: Retry, Reason: "quota"}
		}
		return Outcome{State: Delivered}
	})
	for _, r := range recs {
		if r.Device == recs[0].Device && r.Seq != 1 && sent[r.Seq] {
			t.Errorf("seq %d of the failed device was sent", r.Seq)
		}
		if r.Device == recs[0].Device && out[r.Seq-1].State != Retry {
			t.Errorf("seq %d of the failed device: %v, want retry", r.Seq, out[r.Seq-1].State)
		}
	}
}

func TestPipelineCancelled(t *testing.T) {
	recs := testRecords(10, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := make([]Outcome, len(recs))
	pipeline(ctx, recs, 4, out, func(context.Context, Record) Outcome {
		t.Error("send called with a cancelled context")
		return Outcome{State: Delivered}
	})
	for i, o := range out {
		if o.State != Retry {
			t.Errorf("record %d: %v, want retry", i, o.State)
		}
	}
}
