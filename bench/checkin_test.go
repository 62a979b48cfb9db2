package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// BenchmarkCheckins measures OSCORE check-ins end to end — protect,
// UDP, unprotect, a signed record committed with fsync, the protected
// 2.04 — against a gateway in a child process. Provisioned motes check
// in as fast as their acknowledgements allow (closed loop); the
// sub-benchmarks vary how many do so at once, which is both the load
// and what the gateway's group commit can batch, so they show the
// trade between throughput and latency rather than one point of it.
// Reports check-ins per second, latency quantiles and the gateway's CPU
// per check-in.
//
//	go test -run '^$' -bench Checkins -benchtime 20000x ./bench/
func BenchmarkCheckins(b *testing.B) {
	l := startLab(b)
	defer l.close()
	ctx := context.Background()
	const motes = 256

	b.StopTimer()
	checkers := make([]*mote.Checker, motes)
	var wg sync.WaitGroup
	var setupErr atomic.Value
	sem := make(chan struct{}, 32)
	for i := range checkers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := mote.New(l.identity(b, "CI-"+itoa(i)), mote.Config{Listen: loopback})
			if err == nil {
				var enr *mote.Enrollment
				if enr, _, err = p.Onboard(ctx, l.gw.CoAPS); err == nil {
					oc, perr := p.Provision(ctx, l.gw.CoAPS, enr)
					if err = perr; err == nil {
						checkers[i], err = p.NewChecker(ctx, l.gw.CoAP, oc)
					}
				}
			}
			if err != nil {
				setupErr.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, c := range checkers {
			c.Close()
		}
	}()

	for _, clients := range []int{16, 64, motes} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchCheckins(b, l, checkers[:clients])
		})
	}
}

func benchCheckins(b *testing.B, l *lab, checkers []*mote.Checker) {
	ctx := context.Background()
	cpu0, err := l.gw.CPU()
	if err != nil {
		b.Fatal(err)
	}
	lat := make([][]time.Duration, len(checkers))
	var wg sync.WaitGroup
	var next, failed atomic.Int64
	start := time.Now()
	b.StartTimer()
	for i := range checkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := checkers[i].CheckIn(cctx, mote.Status{Uptime: 1, Firmware: "1.0.0", Reboots: 1})
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	cpu1, _ := l.gw.CPU()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d check-ins failed", n, b.N)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "checkins/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "gw-cpu-us/op")
}
