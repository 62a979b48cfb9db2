package demux

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed/radio"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testTimeout = 5 * time.Second

// hello is a minimal datagram that IsClientHello accepts.
func hello() []byte {
	b := make([]byte, minClientHelloDatagram+4)
	b[0] = contentTypeHandshake
	b[1], b[2] = 0xfe, 0xfd // DTLS 1.2
	b[12] = handshakeHeaderLen + 4
	b[13] = handshakeClientHello
	return b
}

func TestIsClientHello(t *testing.T) {
	mutate := func(f func(b []byte) []byte) []byte { return f(hello()) }
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"client hello", hello(), true},
		{"empty", nil, false},
		{"truncated header", hello()[:recordHeaderLen], false},
		{"application data", mutate(func(b []byte) []byte { b[0] = 23; return b }), false},
		{"alert", mutate(func(b []byte) []byte { b[0] = 21; return b }), false},
		{"TLS not DTLS", mutate(func(b []byte) []byte { b[1] = 0x03; return b }), false},
		{"epoch 1", mutate(func(b []byte) []byte { b[4] = 1; return b }), false},
		{"record longer than datagram", mutate(func(b []byte) []byte { b[12] = 200; return b }), false},
		{"record shorter than handshake header", mutate(func(b []byte) []byte { b[12] = 4; return b }), false},
		{"server hello", mutate(func(b []byte) []byte { b[13] = 2; return b }), false},
		{"coap message", []byte{0x40, 0x01, 0x12, 0x34, 0xb4, 't', 'e', 's', 't'}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsClientHello(tc.b); got != tc.want {
				t.Fatalf("IsClientHello = %v, want %v", got, tc.want)
			}
		})
	}
}

// drops counts Drop callbacks.
type drops struct {
	mu sync.Mutex
	n  map[Reason]int
}

func (d *drops) add(r Reason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = make(map[Reason]int)
	}
	d.n[r]++
}

func (d *drops) get(r Reason) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[r]
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type fixture struct {
	net   *radio.Network
	d     *Demux
	drops *drops
	done  chan error
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	n, err := radio.NewNetwork(radio.WithQueueLen(1024))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := n.Listen("gw:5684")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{net: n, drops: &drops{}, done: make(chan error, 1)}
	if cfg.Accept == nil {
		cfg.Accept = IsClientHello
	}
	cfg.Drop = f.drops.add
	f.d = New(pc, cfg)
	go func() { f.done <- f.d.Serve() }()
	t.Cleanup(func() {
		_ = f.d.Close()
		select {
		case err := <-f.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("Serve did not return after Close")
		}
		_ = n.Close()
	})
	return f
}

func (f *fixture) client(t *testing.T, addr string) net.PacketConn {
	t.Helper()
	pc, err := f.net.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

func send(t *testing.T, pc net.PacketConn, b []byte) {
	t.Helper()
	if _, err := pc.WriteTo(b, radio.Addr("gw:5684")); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) accept(t *testing.T) net.PacketConn {
	t.Helper()
	type result struct {
		pc  net.PacketConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		pc, _, err := f.d.Accept()
		ch <- result{pc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		return r.pc
	case <-time.After(testTimeout):
		t.Fatal("Accept timed out")
		return nil
	}
}

func readPeer(t *testing.T, pc net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 4096)
	n, addr, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return buf[:n], addr
}

func TestRoutesPerPeer(t *testing.T) {
	f := newFixture(t, Config{})
	a := f.client(t, "mote-a:1")
	b := f.client(t, "mote-b:1")

	send(t, a, hello())
	pa := f.accept(t)
	send(t, b, hello())
	pb := f.accept(t)
	if pa.(*Peer).RemoteAddr().String() != "mote-a:1" || pb.(*Peer).RemoteAddr().String() != "mote-b:1" {
		t.Fatalf("peers %v %v", pa.(*Peer).RemoteAddr(), pb.(*Peer).RemoteAddr())
	}
	readPeer(t, pa)
	readPeer(t, pb)

	// After the first datagram anything from a known peer is routed.
	send(t, a, []byte("from a"))
	send(t, b, []byte("from b"))
	if got, from := readPeer(t, pa); string(got) != "from a" || from.String() != "mote-a:1" {
		t.Fatalf("peer a read %q from %v", got, from)
	}
	if got, _ := readPeer(t, pb); string(got) != "from b" {
		t.Fatalf("peer b read %q", got)
	}
	// Writes go to the peer's own address whatever addr says.
	if _, err := pa.WriteTo([]byte("to a"), radio.Addr("mote-b:1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := readPeer(t, a); string(got) != "to a" {
		t.Fatalf("client a read %q", got)
	}
	if f.d.Peers() != 2 {
		t.Fatalf("Peers = %d", f.d.Peers())
	}
}

func TestDrops(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		// run sends datagrams and returns the reason and count expected.
		run  func(t *testing.T, f *fixture)
		want Reason
		n    int
	}{
		{
			name: "garbage from unknown peer",
			run: func(t *testing.T, f *fixture) {
				c := f.client(t, "attacker:1")
				send(t, c, []byte("garbage"))
				send(t, c, []byte{0x40, 0x01, 0, 1})
				bad := hello()
				bad[0] = 23 // application data, epoch 0
				send(t, c, bad)
			},
			want: ReasonRejected, n: 3,
		},
		{
			name: "peer limit",
			cfg:  Config{MaxPeers: 2},
			run: func(t *testing.T, f *fixture) {
				for i := range 4 {
					send(t, f.client(t, fmt.Sprintf("mote-%d:1", i)), hello())
				}
				f.accept(t)
				f.accept(t)
			},
			want: ReasonPeerLimit, n: 2,
		},
		{
			name: "queue full",
			cfg:  Config{QueueLen: 2},
			run: func(t *testing.T, f *fixture) {
				c := f.client(t, "mote:1")
				for range 5 {
					send(t, c, hello())
				}
			},
			want: ReasonQueueFull, n: 3,
		},
		{
			name: "backlog full",
			cfg:  Config{Backlog: 1},
			run: func(t *testing.T, f *fixture) {
				send(t, f.client(t, "mote-1:1"), hello())
				send(t, f.client(t, "mote-2:1"), hello())
			},
			want: ReasonBacklog, n: 1,
		},
		{
			name: "too big",
			cfg:  Config{MaxDatagram: 64},
			run: func(t *testing.T, f *fixture) {
				big := append(hello(), make([]byte, 100)...)
				send(t, f.client(t, "mote:1"), big)
			},
			want: ReasonTooBig, n: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			tc.run(t, f)
			waitFor(t, string(tc.want), func() bool { return f.drops.get(tc.want) >= tc.n })
			if got := f.drops.get(tc.want); got != tc.n {
				t.Fatalf("%s drops = %d, want %d", tc.want, got, tc.n)
			}
			if tc.want == ReasonRejected && f.d.Peers() != 0 {
				t.Fatalf("rejected datagrams created %d peers", f.d.Peers())
			}
			if tc.cfg.MaxPeers > 0 && f.d.Peers() > tc.cfg.MaxPeers {
				t.Fatalf("Peers = %d above MaxPeers %d", f.d.Peers(), tc.cfg.MaxPeers)
			}
		})
	}
}

func TestIdlePeersExpire(t *testing.T) {
	f := newFixture(t, Config{IdleTimeout: 40 * time.Millisecond})
	c := f.client(t, "mote:1")
	send(t, c, hello())
	p := f.accept(t)
	readPeer(t, p)
	_ = p.SetReadDeadline(time.Now().Add(testTimeout))
	if _, _, err := p.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("idle peer read err = %v, want net.ErrClosed", err)
	}
	waitFor(t, "peer removal", func() bool { return f.d.Peers() == 0 })
	// The address may start over with a new ClientHello.
	send(t, c, hello())
	p2 := f.accept(t)
	if p2 == p {
		t.Fatal("expired peer was reused")
	}
}

func TestPeerCloseForgetsAddress(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.client(t, "mote:1")
	send(t, c, hello())
	p := f.accept(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if f.d.Peers() != 0 {
		t.Fatalf("Peers = %d after close", f.d.Peers())
	}
	if _, err := p.WriteTo([]byte("x"), nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close err = %v", err)
	}
	// Without a ClientHello the closed peer's address is unknown again.
	send(t, c, []byte("late record"))
	waitFor(t, "rejection", func() bool { return f.drops.get(ReasonRejected) == 1 })
}

func TestCloseUnblocksEverything(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.client(t, "mote:1")
	send(t, c, hello())
	p := f.accept(t)
	readPeer(t, p)

	errs := make(chan error, 2)
	go func() {
		_, _, err := f.d.Accept()
		errs <- err
	}()
	go func() {
		_, _, err := p.ReadFrom(make([]byte, 10))
		errs <- err
	}()
	if err := f.d.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("err = %v, want net.ErrClosed", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("Close did not unblock")
		}
	}
}

func TestServeReturnsReadError(t *testing.T) {
	n, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pc, err := n.Listen("gw")
	if err != nil {
		t.Fatal(err)
	}
	d := New(pc, Config{})
	done := make(chan error, 1)
	go func() { done <- d.Serve() }()
	_ = pc.Close() // closed underneath the demux, not through Close
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve err = %v, want wrapped net.ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
	}
	if _, _, err := d.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after failure err = %v", err)
	}
}
