package testbed

import (
	"context"

	"fmt"
	"github.com/tumbler-iot/tumbler/coap"
	"testing"
	"time"
)

// One registrar, every path: loopback UDP, the Thread Joiner Router relay,
// BLE, and a stateful and a stateless join proxy.
func TestOnboardEveryLink(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab and every simulated link")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Motes: 1, Thread: 2, BLE: 2, IP: 4, Seed: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Onboarded != 9 {
		t.Fatalf("onboarded %d/9: %+v", rep.Onboarded, rep.Failures)
	}
	for kind, want := range map[string]int{LinkUDP: 1, LinkThread: 2, LinkBLE: 2, LinkJP: 2, LinkJPY: 2} {
		l := rep.Links[kind]
		if l == nil || l.Onboarded != want || l.Motes != want {
			t.Errorf("%s: %+v, want %d onboarded", kind, l, want)
			continue
		}
		if l.PledgeDatagrams == 0 {
			t.Errorf("%s: no datagrams counted", kind)
		}
	}
	for _, kind := range []string{LinkThread, LinkBLE, LinkJP} {
		if l := rep.Links[kind]; l != nil && l.LinkDatagrams == 0 {
			t.Errorf("%s: the link carried nothing", kind)
		}
	}
	if rep.RecordsByType["enroll"] != 9 {
		t.Errorf("enroll records %d, want 9", rep.RecordsByType["enroll"])
	}
}

// Loss × DTLS MTU, seeded: onboarding completes through DTLS and CoAP
// retransmission on the IP link up to 20% datagram loss, and on a
// two-hop Thread mesh whose per-frame loss costs big records more (a
// 1024-octet record is 11 frames, 22 over two hops). Per cell figures:
//
//	go test -count=1 -run TestLossMTUTable -json ./testbed/
//
// (the cells run in parallel; -json names the cell of each log line).
func TestLossMTUTable(t *testing.T) {
	if testing.Short() {
		t.Skip("a lab per cell, lossy links")
	}
	type cell struct {
		kind     string
		loss     float64
		mtu      int
		attempts int // Thread MAC transmissions per frame
	}
	var cells []cell
	for _, loss := range []float64{0, 0.1, 0.2} {
		for _, mtu := range []int{512, 1024} {
			cells = append(cells, cell{"ip", loss, mtu, 0})
		}
	}
	// Raw frame loss (one MAC transmission): 2% costs a 1024-octet record
	// 36% over two hops, a 256-octet one 11%; at 5% the big record is
	// lost 68% of the time and onboarding rarely completes (not run).
	// Smaller records do not save a DTLS flight, though: it is resent
	// whole, and it is about as many frames either way (more, counting
	// the per-record headers). Measured figures are in the closing notes;
	// with three motes a cell they are noisy and not asserted.
	cells = append(cells, cell{"thread", 0.02, 256, 1}, cell{"thread", 0.02, 1024, 1})
	// With 802.15.4's retries even 20% frame loss leaves little.
	cells = append(cells, cell{"thread", 0.2, 256, DefaultMACAttempts}, cell{"thread", 0.2, 1024, DefaultMACAttempts})
	for _, c := range cells {
		t.Run(fmt.Sprintf("%s/loss=%.2f/mtu=%d/attempts=%d", c.kind, c.loss, c.mtu, c.attempts), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			// A short ACK_TIMEOUT keeps the cells quick and bounds an
			// exchange that runs out of retransmissions (MAX_TRANSMIT_WAIT
			// 0.25 s × 511 × 1.5 ≈ 3 min), after which the mote reconnects.
			o := Options{Seed: 7, Dir: t.TempDir(), MTU: c.mtu, Timeout: 9 * time.Minute, Links: LinkOptions{Loss: c.loss, Hops: 2, MACAttempts: c.attempts,
				Transmission: coap.Transmission{AckTimeout: 250 * time.Millisecond, RandomFactor: 1.5, MaxRetransmit: 8}}}
			if c.kind == "ip" {
				o.IP = 4
			} else {
				o.Thread = 3
			}
			rep, err := Run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			var retx uint64
			for _, l := range rep.Links {
				retx += l.HandshakeRetransmissions
			}
			t.Logf("onboarded %d/%d, p50 %.0f ms, max %.0f ms, %d handshake retransmissions", rep.Onboarded, rep.Motes, rep.OnboardP50Ms, rep.OnboardMaxMs, retx)
			if rep.Failed > 0 {
				t.Errorf("%d failed: %+v", rep.Failed, rep.Failures)
			}
			if c.kind == "ip" && c.loss >= 0.1 && retx == 0 {
				t.Error("no handshake retransmission at this loss: is the loss applied?")
			}
		})
	}
}
