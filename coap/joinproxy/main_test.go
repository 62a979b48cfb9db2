package joinproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every network test.
const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 7, 18, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// seededRand is a deterministic randomness source for header keys.
func seededRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

// env is an in-memory network for one test.
type env struct {
	net *radio.Network
	n   atomic.Int64
}

func newEnv(t testing.TB, opts ...radio.Option) *env {
	t.Helper()
	n, err := radio.NewNetwork(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &env{net: n}
}

func (e *env) listen(t testing.TB, addr string) net.PacketConn {
	t.Helper()
	pc, err := e.net.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// upstreams returns a listen function for stateful circuits: a fresh
// radio address per call, like a fresh UDP source port.
func (e *env) upstreams(prefix string) func() (net.PacketConn, error) {
	return func() (net.PacketConn, error) {
		return e.net.Listen(fmt.Sprintf("%s:%d", prefix, 40000+e.n.Add(1)))
	}
}

// serve runs f in the background until the test ends; f's error fails the
// test.
func serve(t testing.TB, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("serve did not return")
		}
	})
}

// recv reads one datagram within d, or fails.
func recv(t testing.TB, pc net.PacketConn, d time.Duration) ([]byte, net.Addr) {
	t.Helper()
	b, from, err := tryRecv(pc, d)
	if err != nil {
		t.Fatalf("read on %v: %v", pc.LocalAddr(), err)
	}
	return b, from
}

func tryRecv(pc net.PacketConn, d time.Duration) ([]byte, net.Addr, error) {
	buf := make([]byte, 8192)
	if err := pc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, nil, err
	}
	defer pc.SetReadDeadline(time.Time{})
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		return nil, nil, err
	}
	return buf[:n], from, nil
}

// quiet asserts that nothing arrives on pc within d.
func quiet(t testing.TB, pc net.PacketConn, d time.Duration) {
	t.Helper()
	b, from, err := tryRecv(pc, d)
	if err == nil {
		t.Fatalf("unexpected %d bytes from %v on %v", len(b), from, pc.LocalAddr())
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

func send(t testing.TB, pc net.PacketConn, b []byte, to string) {
	t.Helper()
	if _, err := pc.WriteTo(b, radio.Addr(to)); err != nil {
		t.Fatal(err)
	}
}

// metric is the value of the sample of family name with the given label
// pairs, or -1 if there is none.
func metric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// eventually polls cond until it holds or the test timeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %x, want %x", what, got, want)
	}
}

// clientHello is a minimal datagram that passes demux.IsClientHello: a
// DTLS 1.2 plaintext handshake record carrying a ClientHello header, tagged
// so datagrams can be told apart.
func clientHello(tag byte) []byte {
	b := []byte{
		22,         // content type handshake
		0xfe, 0xfd, // DTLS 1.2
		0, 0, // epoch 0
		0, 0, 0, 0, 0, 0, // sequence number
		0, 16, // record length
		1,       // handshake type client_hello
		0, 0, 4, // length
		0, 0, // message_seq
		0, 0, 0, // fragment_offset
		0, 0, 4, // fragment_length
		tag, 0, 0, 0,
	}
	return b
}
