package upstream

import (
	"context"
	"sync"
	"sync/atomic"
)

// Reasons given to records a pipeline did not attempt.
const (
	reasonNotAttempted = "not attempted: an earlier record needs a retry"
	reasonDeviceBehind = "not attempted: an earlier record of this device is not delivered"
)

// pipeline delivers recs with send, at most window calls in flight, and
// writes recs[i]'s outcome to out[i]. It keeps per-device order strictly: a
// record starts only after the previous record of the same device in recs
// was delivered or parked, so a device never has two records in flight and
// an upstream never sees record k+1 of a device before it accepted record
// k. Records of different devices overlap. Once any record comes back
// Retry (or ctx ends), no further record starts; those keep a Retry
// outcome. pipeline returns when every started send has returned.
func pipeline(ctx context.Context, recs []Record, window int, out []Outcome, send func(context.Context, Record) Outcome) {
	if window < 1 {
		window = 1
	}
	for i := range out {
		out[i] = Outcome{State: Retry, Reason: reasonNotAttempted}
	}
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		sem  = make(chan struct{}, window)
		done = make([]chan struct{}, len(recs))
		last = make(map[[32]byte]int, len(recs))
	)
dispatch:
	for i := range recs {
		if stop.Load() {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		prev, chained := last[recs[i].Device]
		last[recs[i].Device] = i
		done[i] = make(chan struct{})
		wg.Add(1)
		go func(i, prev int, chained bool) {
			defer wg.Done()
			defer close(done[i])
			defer func() { <-sem }()
			if chained {
				<-done[prev] // out[prev] is final once done[prev] is closed
				if s := out[prev].State; s != Delivered && s != Parked {
					out[i] = Outcome{State: Retry, Reason: reasonDeviceBehind}
					return
				}
			}
			if stop.Load() || ctx.Err() != nil {
				return
			}
			o := send(ctx, recs[i])
			out[i] = o
			if o.State == Retry {
				stop.Store(true)
			}
		}(i, prev, chained)
	}
	wg.Wait()
}
