package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/btp"
	"github.com/tumbler-iot/tumbler/ble/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newNet(t *testing.T, opts ...sim.Option) *sim.Network {
	t.Helper()
	n, err := sim.NewNetwork(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// connect returns both ends of a new link.
func connect(t *testing.T, n *sim.Network, name string) (btp.CentralLink, btp.PeripheralLink) {
	t.Helper()
	ctx := testContext(t)
	type result struct {
		p   btp.PeripheralLink
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := n.Advertise(ctx, name)
		done <- result{p, err}
	}()
	c, err := n.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, r.p
}

func TestLinkCarriesValuesInOrder(t *testing.T) {
	n := newNet(t, sim.WithLatency(50*time.Microsecond, 50*time.Microsecond))
	c, p := connect(t, n, "pledge-1")
	if c.Peer() != "pledge-1" || p.Peer() != sim.DefaultCentralName || c.ATTMTU() != sim.DefaultATTMTU {
		t.Fatalf("peers %q %q, MTU %d", c.Peer(), p.Peer(), c.ATTMTU())
	}
	ctx := testContext(t)
	wantErr(t, p.Send(ctx, []byte{1}), sim.ErrNotSubscribed)
	if err := c.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := c.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := p.Send(ctx, []byte{byte(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		v, err := p.Receive(ctx)
		if err != nil || v[0] != byte(i) {
			t.Fatalf("write %d: %v %v", i, v, err)
		}
		v, err = c.Receive(ctx)
		if err != nil || v[0] != byte(100+i) {
			t.Fatalf("indication %d: %v %v", i, v, err)
		}
	}
	wantErr(t, c.Send(ctx, make([]byte, sim.DefaultATTMTU-2)), sim.ErrValueTooLong)
	if st := n.Stats(); st.Links != 1 || st.Values != 20 || st.Open != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Values confirmed before a close are still received; after them, the
// close.
func TestCloseAfterConfirmedValues(t *testing.T) {
	n := newNet(t)
	c, p := connect(t, n, "pledge-1")
	ctx := testContext(t)
	if err := c.Send(ctx, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if v, err := p.Receive(ctx); err != nil || string(v) != "bye" {
		t.Fatalf("%q %v", v, err)
	}
	_, err := p.Receive(ctx)
	wantErr(t, err, btp.ErrLinkClosed)
	wantErr(t, p.Send(ctx, []byte{1}), sim.ErrNotSubscribed)
	wantErr(t, c.Send(ctx, []byte{1}), btp.ErrLinkClosed)
	if n.Stats().Open != 0 {
		t.Fatal("closed link still open")
	}
}

func TestDropRate(t *testing.T) {
	n := newNet(t, sim.WithDropRate(1))
	c, p := connect(t, n, "pledge-1")
	ctx := testContext(t)
	err := c.Send(ctx, []byte{1})
	wantErr(t, err, btp.ErrLinkClosed)
	wantErr(t, err, sim.ErrDropped)
	_, err = p.Receive(ctx)
	wantErr(t, err, sim.ErrDropped)
	if st := n.Stats(); st.Dropped != 1 || st.Open != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The same seed gives the same MTUs, within the range.
func TestMTUDrawsAreSeeded(t *testing.T) {
	draw := func(seed uint64) []int {
		n := newNet(t, sim.WithSeed(seed), sim.WithATTMTU(23, 247))
		var mtus []int
		for i := range 8 {
			c, _ := connect(t, n, "p")
			if m := c.ATTMTU(); m < 23 || m > 247 {
				t.Fatalf("link %d: ATT_MTU %d", i, m)
			}
			mtus = append(mtus, c.ATTMTU())
		}
		return mtus
	}
	a, b, other := draw(5), draw(5), draw(6)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, other) {
		t.Fatalf("seed 5: %v and %v; seed 6: %v", a, b, other)
	}
}

// A pledge that gives up advertising is skipped, not connected.
func TestAdvertiseCancelAndBacklog(t *testing.T) {
	n := newNet(t, sim.WithBacklog(1))
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		_, err := n.Advertise(ctx, "gives-up")
		done <- err
	}()
	time.Sleep(5 * time.Millisecond) // usually queued first; either order ends the same
	short, stop := context.WithTimeout(testContext(t), 20*time.Millisecond)
	defer stop()
	_, err := n.Advertise(short, "no-room")
	wantErr(t, err, context.DeadlineExceeded)
	cancel()
	wantErr(t, <-done, context.Canceled)
	c, _ := connect(t, n, "stays")
	if c.Peer() != "stays" {
		t.Fatalf("connected to %q", c.Peer())
	}
}

func TestCloseUnblocks(t *testing.T) {
	n, err := sim.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	c, p := connect(t, n, "p")
	done := make(chan error, 2)
	go func() {
		_, err := n.Accept(context.Background())
		done <- err
	}()
	go func() {
		_, err := p.Receive(context.Background())
		done <- err
	}()
	_ = n.Close()
	for range 2 {
		if err := <-done; !errors.Is(err, sim.ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	}
	wantErr(t, c.Send(testContext(t), []byte{1}), btp.ErrLinkClosed)
	_, err = n.Advertise(testContext(t), "late")
	wantErr(t, err, sim.ErrClosed)
}

// Listen is what testbed/mote's Config.Listen takes: each call is a new
// BLE link to the gateway.
func TestListenForMote(t *testing.T) {
	n := newNet(t)
	central, err := ble.NewCentral()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- central.Serve(context.Background(), n) }()
	defer func() {
		_ = central.Close()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	listen := n.Listen("mote-1")
	for i := range 2 {
		pc, err := listen()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.WriteTo([]byte("hi"), n.CentralAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		_ = central.SetReadDeadline(time.Now().Add(testTimeout))
		_, from, err := central.ReadFrom(buf)
		if err != nil || from.(ble.Addr).Link != uint64(i+1) {
			t.Fatalf("call %d: from %v, %v", i, from, err)
		}
		_ = pc.Close()
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]sim.Option{
		"nil":          nil,
		"mtu 22":       sim.WithATTMTU(22, 100),
		"mtu 518":      sim.WithATTMTU(23, 518),
		"mtu reversed": sim.WithATTMTU(100, 50),
		"latency":      sim.WithLatency(-1, 0),
		"drop":         sim.WithDropRate(1.5),
		"backlog":      sim.WithBacklog(0),
		"name":         sim.WithCentralName(""),
		"timeout":      sim.WithConnectTimeout(0),
	} {
		if _, err := sim.NewNetwork(o); !errors.Is(err, sim.ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func wantErr(t *testing.T, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("error %v, want %v", got, want)
	}
}
