package joinproxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

const wait = 2 * time.Second // for datagrams that must arrive

// startStateful runs a stateful proxy on the given links toward the
// registrar address "reg:5684".
func startStateful(t *testing.T, e *env, links []net.PacketConn, opts ...Option) *Stateful {
	t.Helper()
	p, err := NewStateful(radio.Addr("reg:5684"), e.upstreams("jp-up"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return p.Serve(ctx, links...) })
	return p
}

// TestStatefulRelaysUntouched: datagrams go through byte for byte, each
// pledge tuple from its own registrar-facing address, and replies come
// back from the join port.
func TestStatefulRelaysUntouched(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:5684")
	p := startStateful(t, e, []net.PacketConn{e.listen(t, "jp:8485")})
	a1, a2 := e.listen(t, "pa:1001"), e.listen(t, "pa:1002")

	hello := clientHello(1)
	send(t, a1, hello, "jp:8485")
	got, via1 := recv(t, reg, wait)
	wantBytes(t, "relayed", got, hello)
	send(t, a1, []byte("second"), "jp:8485")
	got, again := recv(t, reg, wait)
	wantBytes(t, "relayed", got, []byte("second"))
	if again.String() != via1.String() {
		t.Fatalf("one pledge tuple, two source addresses: %v, %v", via1, again)
	}
	send(t, a2, []byte("other port"), "jp:8485")
	_, via2 := recv(t, reg, wait)
	if via2.String() == via1.String() {
		t.Fatalf("two pledge tuples share source address %v", via1)
	}

	reply := bytes.Repeat([]byte{0x17, 0xfe, 0xfd}, 300)
	if _, err := reg.WriteTo(reply, via1); err != nil {
		t.Fatal(err)
	}
	got, from := recv(t, a1, wait)
	wantBytes(t, "reply", got, reply)
	if from.String() != "jp:8485" {
		t.Fatalf("reply from %v, want the join port", from)
	}
	quiet(t, a2, 50*time.Millisecond)

	st := p.Stats()
	if st.Up != 3 || st.Down != 1 || st.Active != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatefulLimits(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:5684")
	links := []net.PacketConn{e.listen(t, "jp:8485"), e.listen(t, "jp2:8485")}
	p := startStateful(t, e, links, WithLimits(2, 3))

	relayed := func(pc net.PacketConn, join string) bool {
		t.Helper()
		send(t, pc, []byte(pc.LocalAddr().String()), join)
		b, _, err := tryRecv(reg, 200*time.Millisecond)
		if err == nil && string(b) != pc.LocalAddr().String() {
			t.Fatalf("registrar got %q from someone else", b)
		}
		return err == nil
	}
	steps := []struct {
		pledge, join string
		ok           bool
	}{
		{"a:1", "jp:8485", true},
		{"a:2", "jp:8485", true},
		{"a:3", "jp:8485", false}, // third tuple of pledge a: pledge limit
		{"b:1", "jp:8485", true},
		{"c:1", "jp:8485", false}, // fourth on the interface: interface limit
		{"a:4", "jp2:8485", true}, // another interface has its own budget
		{"a:1", "jp:8485", true},  // an existing circuit is never refused
	}
	conns := map[string]net.PacketConn{}
	for _, s := range steps {
		pc := conns[s.pledge]
		if pc == nil {
			pc = e.listen(t, s.pledge)
			conns[s.pledge] = pc
		}
		if got := relayed(pc, s.join); got != s.ok {
			t.Fatalf("%s via %s relayed = %v, want %v", s.pledge, s.join, got, s.ok)
		}
	}
	st := p.Stats()
	if st.Dropped[ReasonPledgeLimit] != 1 || st.Dropped[ReasonInterfaceLimit] != 1 || st.Active != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStatefulExpiry: a circuit lives 30 s after the last datagram in
// either direction, then its state and socket go; the same pledge tuple
// then gets a new circuit.
func TestStatefulExpiry(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	reg := e.listen(t, "reg:5684")
	p := startStateful(t, e, []net.PacketConn{e.listen(t, "jp:8485")}, WithClock(clock.Now), WithLimits(1, 1))
	a := e.listen(t, "a:1")

	send(t, a, []byte("1"), "jp:8485")
	_, via := recv(t, reg, wait)
	clock.Advance(20 * time.Second)
	if _, err := reg.WriteTo([]byte("r"), via); err != nil { // the reply refreshes the timer
		t.Fatal(err)
	}
	recv(t, a, wait)
	eventually(t, "the reply to be accounted", func() bool { return p.Stats().Down == 1 })
	clock.Advance(25 * time.Second) // 45 s after the pledge's datagram, 25 after the reply
	time.Sleep(1100 * time.Millisecond)
	send(t, a, []byte("2"), "jp:8485")
	_, again := recv(t, reg, wait)
	if again.String() != via.String() {
		t.Fatalf("circuit replaced at 25 s idle: %v -> %v", via, again)
	}

	clock.Advance(31 * time.Second)
	eventually(t, "the circuit to expire", func() bool { return p.Stats().Active == 0 })
	if _, err := reg.WriteTo([]byte("late"), via); err != nil {
		t.Fatal(err)
	}
	quiet(t, a, 50*time.Millisecond) // its socket is gone

	// The limit is 1 per interface: only expiry makes room.
	b := e.listen(t, "b:1")
	send(t, b, []byte("3"), "jp:8485")
	_, fresh := recv(t, reg, wait)
	if fresh.String() == via.String() {
		t.Fatalf("new circuit reuses the expired source %v", via)
	}
}

// TestStatefulLazyExpiry: at a limit, expired circuits make room at once,
// before the sweeper runs.
func TestStatefulLazyExpiry(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	reg := e.listen(t, "reg:5684")
	p := startStateful(t, e, []net.PacketConn{e.listen(t, "jp:8485")},
		WithClock(clock.Now), WithLimits(2, 2), WithStateTimeout(time.Hour))
	for _, addr := range []string{"a:1", "a:2"} {
		send(t, e.listen(t, addr), []byte(addr), "jp:8485")
		recv(t, reg, wait)
	}
	a3 := e.listen(t, "a:3")
	send(t, a3, []byte("refused"), "jp:8485")
	quiet(t, reg, 50*time.Millisecond)
	clock.Advance(time.Hour)
	send(t, a3, []byte("admitted"), "jp:8485")
	got, _ := recv(t, reg, wait)
	wantBytes(t, "after expiry", got, []byte("admitted"))
	if st := p.Stats(); st.Active != 1 || st.Dropped[ReasonPledgeLimit] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatefulDropsStrangersAndGiants(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:5684")
	p := startStateful(t, e, []net.PacketConn{e.listen(t, "jp:8485")}, WithMaxDatagram(256))
	a := e.listen(t, "a:1")
	send(t, a, []byte("hi"), "jp:8485")
	_, via := recv(t, reg, wait)

	stranger := e.listen(t, "evil:1")
	send(t, stranger, []byte("spoof"), via.String())
	send(t, a, make([]byte, 300), "jp:8485")
	if _, err := reg.WriteTo(make([]byte, 300), via); err != nil {
		t.Fatal(err)
	}
	quiet(t, a, 50*time.Millisecond)
	quiet(t, reg, 50*time.Millisecond)
	eventually(t, "drops to be counted", func() bool {
		st := p.Stats()
		return st.Dropped[ReasonNotRegistrar] == 1 && st.Dropped[ReasonTooBig] == 2
	})
}

func TestStatefulUpstreamFailure(t *testing.T) {
	e := newEnv(t)
	failing := func() (net.PacketConn, error) { return nil, errors.New("no ports left") }
	p, err := NewStateful(radio.Addr("reg:5684"), failing)
	if err != nil {
		t.Fatal(err)
	}
	link := e.listen(t, "jp:8485")
	serve(t, func(ctx context.Context) error { return p.Serve(ctx, link) })
	send(t, e.listen(t, "a:1"), []byte("x"), "jp:8485")
	eventually(t, "the refusal to be counted", func() bool { return p.Stats().Dropped[ReasonUpstream] == 1 })
}

func TestStatefulServeOnce(t *testing.T) {
	e := newEnv(t)
	p, err := NewStateful(radio.Addr("reg:5684"), e.upstreams("up"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Serve(testContext(t)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Serve without links = %v", err)
	}
	first := e.listen(t, "jp:1")
	serve(t, func(ctx context.Context) error { return p.Serve(ctx, first) })
	send(t, e.listen(t, "a:1"), []byte("x"), "jp:1")
	eventually(t, "Serve to start", func() bool { return p.Stats().Active == 1 })
	second := e.listen(t, "jp:2")
	if err := p.Serve(testContext(t), second); !errors.Is(err, ErrServing) {
		t.Fatalf("second Serve = %v, want ErrServing", err)
	}
	if _, err := second.WriteTo([]byte{0}, radio.Addr("x:1")); err == nil {
		t.Fatal("a refused Serve left its link open")
	}
}

func TestStatefulCloseStopsServe(t *testing.T) {
	e := newEnv(t)
	p, err := NewStateful(radio.Addr("reg:5684"), e.upstreams("up"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	link := e.listen(t, "jp:1")
	go func() { done <- p.Serve(testContext(t), link) }()
	send(t, e.listen(t, "a:1"), []byte("x"), "jp:1")
	eventually(t, "a circuit", func() bool { return p.Stats().Active == 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after Close")
	}
	if st := p.Stats(); st.Active != 0 {
		t.Fatalf("%d circuits after Close", st.Active)
	}
}

func TestStatefulMetrics(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	if _, err := NewStateful(radio.Addr("r:1"), e.upstreams("up"), WithMetrics(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStateful(radio.Addr("r:1"), e.upstreams("up"), WithMetrics(reg)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("second stateful proxy on one registry = %v", err)
	}
	// The other modes register beside it.
	if _, err := NewStateless(radio.Addr("r:2"), WithMetrics(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRegistrarConn(e.listen(t, "r:3"), WithMetrics(reg)); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, reg, "tumbler_joinproxy_dropped_total", "mode", "stateful", "reason", "pledge_limit"); got != 0 {
		t.Fatalf("pledge_limit = %v", got)
	}
}

func TestOptionsApply(t *testing.T) {
	e := newEnv(t)
	up := e.upstreams("up")
	for _, tc := range []struct {
		name string
		make func() error
	}{
		{"key rotation on stateful", func() error {
			_, err := NewStateful(radio.Addr("r:1"), up, WithKeyRotation(time.Hour))
			return err
		}},
		{"limits on stateless", func() error { _, err := NewStateless(radio.Addr("r:1"), WithLimits(2, 10)); return err }},
		{"max peers on stateless", func() error { _, err := NewStateless(radio.Addr("r:1"), WithMaxPeers(2, 1)); return err }},
		{"limits on registrar", func() error { _, err := NewRegistrarConn(e.listen(t, "r:2"), WithLimits(2, 10)); return err }},
		{"zero per pledge", func() error { _, err := NewStateful(radio.Addr("r:1"), up, WithLimits(0, 10)); return err }},
		{"pledge above interface", func() error { _, err := NewStateful(radio.Addr("r:1"), up, WithLimits(3, 2)); return err }},
		{"negative timeout", func() error { _, err := NewStateful(radio.Addr("r:1"), up, WithStateTimeout(-1)); return err }},
		{"tiny datagrams", func() error { _, err := NewStateful(radio.Addr("r:1"), up, WithMaxDatagram(10)); return err }},
		{"fast rotation", func() error { _, err := NewStateless(radio.Addr("r:1"), WithKeyRotation(time.Millisecond)); return err }},
		{"nil rand", func() error { _, err := NewStateless(radio.Addr("r:1"), WithRand(nil)); return err }},
		{"nil clock", func() error { _, err := NewStateless(radio.Addr("r:1"), WithClock(nil)); return err }},
		{"nil option", func() error { _, err := NewStateless(radio.Addr("r:1"), nil); return err }},
		{"no registrar", func() error { _, err := NewStateless(nil); return err }},
		{"no listen", func() error { _, err := NewStateful(radio.Addr("r:1"), nil); return err }},
		{"no conn", func() error { _, err := NewRegistrarConn(nil); return err }},
		{"per JP above total", func() error { _, err := NewRegistrarConn(e.listen(t, "r:3"), WithMaxPeers(1, 2)); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.make(); !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", err)
			}
		})
	}
}
