package coap_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/coap"
)

// hintedConn is a link that asks for a long DTLS flight interval, as a BLE
// link does, and counts what is written to it.
type hintedConn struct {
	net.PacketConn
	interval time.Duration
	writes   atomic.Int64
}

func (h *hintedConn) DTLSFlightInterval() time.Duration { return h.interval }

func (h *hintedConn) WriteTo(p []byte, a net.Addr) (int, error) {
	h.writes.Add(1)
	return h.PacketConn.WriteTo(p, a)
}

// DialDTLS takes the link's flight interval when the configuration sets
// none: against a silent peer, a ClientHello goes out at once and is not
// resent within 1.5 s (with pion's 1 s default it would be).
func TestDialDTLSTakesTheLinksFlightInterval(t *testing.T) {
	silent := listenLoopback(t)
	defer silent.Close()
	for _, tc := range []struct {
		hint      time.Duration
		cfg       time.Duration
		wantMore1 bool
	}{
		{hint: 0, wantMore1: true}, // pion's 1 s: resent within 1.5 s
		{hint: 4 * time.Second, wantMore1: false},
		{hint: 4 * time.Second, cfg: 300 * time.Millisecond, wantMore1: true}, // the configuration wins
	} {
		pc := &hintedConn{PacketConn: listenLoopback(t), interval: tc.hint}
		ctx, cancel := context.WithTimeout(testContext(t), 1500*time.Millisecond)
		_, err := coap.DialDTLS(ctx, pc, silent.LocalAddr(), coap.ClientDTLSConfig{InsecureSkipVerify: true, FlightInterval: tc.cfg})
		cancel()
		if err == nil {
			t.Fatal("a silent peer completed a handshake")
		}
		if n := pc.writes.Load(); (n > 1) != tc.wantMore1 || n == 0 {
			t.Errorf("hint %v, configured %v: %d ClientHellos in 1.5 s", tc.hint, tc.cfg, n)
		}
	}
}
