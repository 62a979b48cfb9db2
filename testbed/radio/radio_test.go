package radio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every blocking step of a test.
const testTimeout = 5 * time.Second

func newNet(t *testing.T, opts ...Option) *Network {
	t.Helper()
	n, err := NewNetwork(opts...)
	if err != nil {
		t.Fatalf("NewNetwork: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func listen(t *testing.T, n *Network, addr string) net.PacketConn {
	t.Helper()
	pc, err := n.Listen(addr)
	if err != nil {
		t.Fatalf("Listen(%q): %v", addr, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// read reads one datagram with the test timeout.
func read(t *testing.T, pc net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	if err := pc.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return buf[:n], from
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
	}{
		{"negative loss", WithLoss(-0.1)},
		{"loss above one", WithLoss(1.5)},
		{"zero MTU", WithMTU(0)},
		{"negative latency", WithLatency(-time.Millisecond, 0)},
		{"negative jitter", WithLatency(0, -time.Millisecond)},
		{"zero queue", WithQueueLen(0)},
		{"zero hops", WithHops(0)},
		{"negative hops", WithHops(-1)},
		{"too many hops", WithHops(MaxHops + 1)},
		{"negative fragment payload", WithFragmentation(-1)},
		{"fragment payload too small", WithFragmentation(MinFragmentPayload - 1)},
		{"fragment payload above frame", WithFragmentation(MaxFragmentPayload + 1)},
		{"negative frame time", WithFrameTime(-time.Microsecond)},
		{"nil option", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NewNetwork(tc.opt)
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("NewNetwork err = %v, want ErrInvalidOption", err)
			}
			if n != nil {
				t.Fatal("NewNetwork returned a network with an error")
			}
		})
	}
}

func TestListenAddresses(t *testing.T) {
	n := newNet(t)
	listen(t, n, "gw:5684")
	tests := []struct {
		name string
		addr string
		want error
	}{
		{"duplicate", "gw:5684", ErrAddrInUse},
		{"empty", "", ErrInvalidAddr},
		{"too long", string(bytes.Repeat([]byte{'a'}, maxAddrLen+1)), ErrInvalidAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := n.Listen(tc.addr); !errors.Is(err, tc.want) {
				t.Fatalf("Listen(%q) err = %v, want %v", tc.addr, err, tc.want)
			}
		})
	}
	t.Run("reuse after close", func(t *testing.T) {
		pc, err := n.Listen("mote-1:1")
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Close(); err != nil {
			t.Fatal(err)
		}
		pc2, err := n.Listen("mote-1:1")
		if err != nil {
			t.Fatalf("Listen after close: %v", err)
		}
		_ = pc2.Close()
	})
	t.Run("closed network", func(t *testing.T) {
		n2 := newNet(t)
		_ = n2.Close()
		if _, err := n2.Listen("x"); !errors.Is(err, ErrNetworkClosed) {
			t.Fatalf("err = %v, want ErrNetworkClosed", err)
		}
	})
}

func TestDelivery(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{"immediate", nil},
		{"latency", []Option{WithLatency(2*time.Millisecond, 0)}},
		{"latency and jitter", []Option{WithLatency(time.Millisecond, 3*time.Millisecond), WithSeed(7)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, tc.opts...)
			a := listen(t, n, "mote-1:49152")
			b := listen(t, n, "gw:5683")
			msg := []byte("hello")
			if _, err := a.WriteTo(msg, Addr("gw:5683")); err != nil {
				t.Fatal(err)
			}
			msg[0] = 'X' // the radio must have copied the datagram
			got, from := read(t, b)
			if string(got) != "hello" {
				t.Fatalf("got %q, want hello", got)
			}
			if from.String() != "mote-1:49152" || from.Network() != "radio" {
				t.Fatalf("from = %v/%v", from.Network(), from)
			}
			// The reply goes back to the source address.
			if _, err := b.WriteTo([]byte("ack"), from); err != nil {
				t.Fatal(err)
			}
			if got, _ := read(t, a); string(got) != "ack" {
				t.Fatalf("reply %q", got)
			}
			st := n.Stats()
			if st.Sent != 2 || st.Delivered != 2 || st.Dropped() != 0 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestFixedLatencyKeepsOrder(t *testing.T) {
	n := newNet(t, WithLatency(time.Millisecond, 0))
	a := listen(t, n, "a")
	b := listen(t, n, "b")
	const count = 50
	for i := range count {
		if _, err := a.WriteTo([]byte{byte(i)}, Addr("b")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		got, _ := read(t, b)
		if got[0] != byte(i) {
			t.Fatalf("datagram %d arrived as %d", i, got[0])
		}
	}
}

func TestDrops(t *testing.T) {
	tests := []struct {
		name  string
		opts  []Option
		to    string
		size  int
		count int
		want  Stats
	}{
		{
			name: "above MTU", opts: []Option{WithMTU(100)}, to: "b", size: 101, count: 3,
			want: Stats{Sent: 3, DroppedMTU: 3},
		},
		{
			name: "at MTU", opts: []Option{WithMTU(100)}, to: "b", size: 100, count: 3,
			want: Stats{Sent: 3, Delivered: 3, Frames: 3},
		},
		{
			name: "no route", to: "nobody", size: 10, count: 2,
			want: Stats{Sent: 2, DroppedNoRoute: 2, Frames: 2},
		},
		{
			name: "queue full", opts: []Option{WithQueueLen(4)}, to: "b", size: 10, count: 10,
			want: Stats{Sent: 10, Delivered: 4, DroppedQueueFull: 6, Frames: 10},
		},
		{
			name: "total loss", opts: []Option{WithLoss(1)}, to: "b", size: 10, count: 5,
			want: Stats{Sent: 5, DroppedLoss: 5, Frames: 5},
		},
		{
			name: "total loss over hops", opts: []Option{WithLoss(1), WithHops(3)}, to: "b", size: 10, count: 4,
			want: Stats{Sent: 4, DroppedLoss: 4, Frames: 12},
		},
		{
			name: "total loss of fragments", opts: []Option{WithLoss(1), WithFragmentation(100)}, to: "b", size: 250, count: 5,
			want: Stats{Sent: 5, DroppedFragment: 5, Frames: 15},
		},
		{
			name: "two fragments", opts: []Option{WithLoss(1), WithFragmentation(100)}, to: "b", size: 101, count: 2,
			want: Stats{Sent: 2, DroppedFragment: 2, Frames: 4},
		},
		{
			name: "one fragment is no fragmentation", opts: []Option{WithLoss(1), WithFragmentation(100), WithHops(2)},
			to: "b", size: 100, count: 3,
			want: Stats{Sent: 3, DroppedLoss: 3, Frames: 6},
		},
		{
			name: "fragmented over hops", opts: []Option{WithFragmentation(100), WithHops(4)}, to: "b", size: 250, count: 2,
			want: Stats{Sent: 2, Delivered: 2, Frames: 24},
		},
		{
			name: "MTU before fragmentation", opts: []Option{WithMTU(200), WithFragmentation(100), WithHops(2)},
			to: "b", size: 201, count: 3,
			want: Stats{Sent: 3, DroppedMTU: 3},
		},
		{
			name: "no route still sends frames", opts: []Option{WithFragmentation(100), WithHops(2)},
			to: "nobody", size: 250, count: 2,
			want: Stats{Sent: 2, DroppedNoRoute: 2, Frames: 12},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, tc.opts...)
			a := listen(t, n, "a")
			listen(t, n, "b")
			for range tc.count {
				if _, err := a.WriteTo(make([]byte, tc.size), Addr(tc.to)); err != nil {
					t.Fatal(err)
				}
			}
			if got := n.Stats(); got != tc.want {
				t.Fatalf("stats = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// lossPattern returns which of count datagrams a network with seed delivers.
func lossPattern(t *testing.T, seed uint64, count int) []bool {
	t.Helper()
	n := newNet(t, WithSeed(seed), WithLoss(0.3), WithQueueLen(count))
	a := listen(t, n, "a")
	b := listen(t, n, "b")
	for i := range count {
		if _, err := a.WriteTo([]byte(fmt.Sprint(i)), Addr("b")); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]bool, count)
	delivered := int(n.Stats().Delivered)
	for range delivered {
		d, _ := read(t, b)
		var i int
		if _, err := fmt.Sscan(string(d), &i); err != nil {
			t.Fatal(err)
		}
		got[i] = true
	}
	return got
}

func TestLossIsDeterministicPerSeed(t *testing.T) {
	const count = 200
	first := lossPattern(t, 42, count)
	again := lossPattern(t, 42, count)
	other := lossPattern(t, 43, count)
	lost := 0
	for i := range count {
		if first[i] != again[i] {
			t.Fatalf("seed 42 differs at datagram %d", i)
		}
		if !first[i] {
			lost++
		}
	}
	if lost == 0 || lost == count {
		t.Fatalf("loss 0.3 lost %d of %d", lost, count)
	}
	same := true
	for i := range count {
		same = same && first[i] == other[i]
	}
	if same {
		t.Fatal("seeds 42 and 43 produced the same loss pattern")
	}
}

func TestDeadlinesAndClose(t *testing.T) {
	tests := []struct {
		name string
		// setup arranges for the pending ReadFrom to end; it returns the
		// error the read must match.
		setup func(pc net.PacketConn) error
	}{
		{"read deadline", func(pc net.PacketConn) error {
			_ = pc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			return os.ErrDeadlineExceeded
		}},
		{"deadline in the past", func(pc net.PacketConn) error {
			_ = pc.SetDeadline(time.Now().Add(-time.Second))
			return os.ErrDeadlineExceeded
		}},
		{"close", func(pc net.PacketConn) error {
			go func() {
				time.Sleep(10 * time.Millisecond)
				_ = pc.Close()
			}()
			return net.ErrClosed
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t)
			pc := listen(t, n, "a")
			want := tc.setup(pc)
			done := make(chan error, 1)
			go func() {
				_, _, err := pc.ReadFrom(make([]byte, 10))
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, want) {
					t.Fatalf("ReadFrom err = %v, want %v", err, want)
				}
				var ne net.Error
				if want == os.ErrDeadlineExceeded && (!errors.As(err, &ne) || !ne.Timeout()) {
					t.Fatalf("deadline error %v is not a net.Error timeout", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("ReadFrom did not return")
			}
		})
	}
	t.Run("deadline can be cleared", func(t *testing.T) {
		n := newNet(t)
		a := listen(t, n, "a")
		b := listen(t, n, "b")
		_ = b.SetReadDeadline(time.Now().Add(-time.Second))
		_ = b.SetReadDeadline(time.Time{})
		if _, err := a.WriteTo([]byte("x"), Addr("b")); err != nil {
			t.Fatal(err)
		}
		if got, _ := read(t, b); string(got) != "x" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		n := newNet(t)
		a := listen(t, n, "a")
		_ = a.SetWriteDeadline(time.Now().Add(-time.Second))
		if _, err := a.WriteTo([]byte("x"), Addr("a")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("use after close", func(t *testing.T) {
		n := newNet(t)
		a, err := n.Listen("a")
		if err != nil {
			t.Fatal(err)
		}
		_ = a.Close()
		if _, err := a.WriteTo([]byte("x"), Addr("a")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write err = %v", err)
		}
		if err := a.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second close err = %v", err)
		}
	})
	t.Run("network close unblocks readers", func(t *testing.T) {
		n, err := NewNetwork(WithLatency(time.Hour, 0))
		if err != nil {
			t.Fatal(err)
		}
		a, err := n.Listen("a")
		if err != nil {
			t.Fatal(err)
		}
		// A datagram that would only arrive in an hour is discarded.
		if _, err := a.WriteTo([]byte("x"), Addr("a")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, _, err := a.ReadFrom(make([]byte, 4))
			done <- err
		}()
		_ = n.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("err = %v", err)
			}
		case <-ctx.Done():
			t.Fatal("reader not unblocked")
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	n := newNet(t, WithQueueLen(1000), WithLatency(0, time.Millisecond))
	dst := listen(t, n, "gw")
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		src := listen(t, n, fmt.Sprintf("mote-%d", w))
		wg.Go(func() {
			for range each {
				if _, err := src.WriteTo([]byte("x"), Addr("gw")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for range writers * each {
		read(t, dst)
	}
	if st := n.Stats(); st.Delivered != writers*each {
		t.Fatalf("stats = %+v", st)
	}
}

func BenchmarkTransmit(b *testing.B) {
	n, err := NewNetwork(WithQueueLen(1 << 16))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	src, _ := n.Listen("a")
	dst, _ := n.Listen("b")
	msg := make([]byte, 100)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.WriteTo(msg, Addr("b")); err != nil {
			b.Fatal(err)
		}
		if _, _, err := dst.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
}
