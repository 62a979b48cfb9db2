package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed"
)

// BenchmarkLinks onboards b.N motes over each link kind into one registrar
// (testbed.Run: lab MASA, gateway, simulated links, all in this process),
// at 0% and 5% loss, and reports onboardings per second, the p50 latency
// and the pledges' handshake retransmissions per onboarding:
//
//	go test -run '^$' -bench Links -benchtime 40x ./bench/
//
// Loss is per datagram on the IP link and per 802.15.4 frame and hop on
// the Thread mesh (1 hop here); BLE has no datagram loss (ATT is
// reliable), so its 5% row is the same link with the same seed.
func BenchmarkLinks(b *testing.B) {
	for _, kind := range []string{"thread", "ble", "ip"} {
		for _, loss := range []float64{0, 0.05} {
			b.Run(fmt.Sprintf("%s/loss=%.2f", kind, loss), func(b *testing.B) {
				o := testbed.Options{Seed: 1, Dir: b.TempDir(), Timeout: 10 * time.Minute, Links: testbed.LinkOptions{Loss: loss, Hops: 1}}
				switch kind {
				case "thread":
					o.Thread = b.N
				case "ble":
					o.BLE = b.N
				case "ip":
					o.IP = b.N
				}
				b.ResetTimer()
				rep, err := testbed.Run(context.Background(), o)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if rep.Failed > 0 {
					b.Fatalf("%d of %d failed: %+v", rep.Failed, rep.Motes, rep.Failures)
				}
				var retx uint64
				var p50 float64
				for _, l := range rep.Links {
					retx += l.HandshakeRetransmissions
					p50 = max(p50, l.OnboardP50Ms)
				}
				b.ReportMetric(rep.OnboardingsPerS, "onboardings/s")
				b.ReportMetric(p50, "p50-ms")
				b.ReportMetric(float64(retx)/float64(rep.Motes), "retx/onboarding")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
