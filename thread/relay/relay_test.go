package relay

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// sink is a Sender that records RLY_TX payloads.
type sink struct {
	mu  sync.Mutex
	txs []*meshcop.Relay
	err error
}

func (s *sink) Notify(_ context.Context, r *coap.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if r.Method != codes.POST || r.Path != meshcop.PathRelayTx {
		return errors.New("not an RLY_TX")
	}
	tx, err := meshcop.ParseRelay(r.Payload)
	if err != nil {
		return err
	}
	s.txs = append(s.txs, tx)
	return nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newRelay(t *testing.T, opts ...Option) (*Conn, *sink, *clock) {
	t.Helper()
	s, clk := &sink{}, &clock{now: time.Unix(1_800_000_000, 0)}
	c, err := New(s, append([]Option{WithClock(clk.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, s, clk
}

func joinerAt(n byte) Addr {
	return Addr{IID: [8]byte{0xd4, n, 0, 0, 0, 0, 0, n}, Port: CBRSKIJoinerPort, Locator: 0x0400}
}

// rx delivers an RLY_RX for a carrying data.
func rx(t *testing.T, c *Conn, a Addr, data []byte) error {
	t.Helper()
	b, err := (&meshcop.Relay{JoinerUDPPort: a.Port, JoinerIID: a.IID, JoinerRouterLocator: a.Locator, Payload: data}).RxTLVs().Encode()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ServeCoAP(context.Background(), &coap.Request{Method: codes.POST, Path: meshcop.PathRelayRx, Payload: b})
	return err
}

func read(t *testing.T, c *Conn) ([]byte, net.Addr) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], from
}

func TestRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, s, _ := newRelay(t)
	a := joinerAt(1)
	if err := rx(t, c, a, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	data, from := read(t, c)
	if string(data) != "hello" || from != a {
		t.Fatalf("%q from %v", data, from)
	}
	if _, err := c.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	// A relay address that went through its String form still works.
	parsed, err := ParseAddr(from.String())
	if err != nil || parsed != a {
		t.Fatalf("ParseAddr(%q) = %v, %v", from, parsed, err)
	}
	if _, err := c.WriteTo([]byte("again"), &parsed); err != nil {
		t.Fatal(err)
	}
	if len(s.txs) != 2 || string(s.txs[0].Payload) != "back" || s.txs[0].JoinerIID != a.IID ||
		s.txs[0].JoinerUDPPort != a.Port || s.txs[0].JoinerRouterLocator != a.Locator || s.txs[0].KEK != nil {
		t.Fatalf("RLY_TX %+v", s.txs)
	}
	if st := c.Stats(); st.Received != 1 || st.Sent != 2 || st.Joiners != 1 {
		t.Fatalf("%+v", st)
	}
	if got := c.LocalAddr().String(); got != Network {
		t.Fatalf("LocalAddr %q", got)
	}
}

// TestUnknownJoinerWrite: the relay only answers; c/tx to a joiner that
// never sent RLY_RX, or whose state expired, is an error.
func TestUnknownJoinerWrite(t *testing.T) {
	c, s, clk := newRelay(t, WithIdleTimeout(10*time.Second))
	_, err := c.WriteTo([]byte("x"), joinerAt(9))
	if !errors.Is(err, ErrUnknownJoiner) {
		t.Fatalf("never seen: %v", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("not a net.OpError: %v", err)
	}
	if _, err := c.WriteTo([]byte("x"), fakeAddr("192.0.2.1:993")); !errors.Is(err, ErrUnknownJoiner) {
		t.Fatalf("foreign address: %v", err)
	}
	a := joinerAt(1)
	if err := rx(t, c, a, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	read(t, c)
	clk.advance(11 * time.Second)
	if _, err := c.WriteTo([]byte("late"), a); !errors.Is(err, ErrUnknownJoiner) {
		t.Fatalf("expired: %v", err)
	}
	if st := c.Stats(); st.UnknownJoiner != 3 || st.Expired != 1 || st.Joiners != 0 || len(s.txs) != 0 {
		t.Fatalf("%+v", st)
	}
	// A new RLY_RX from the same joiner is welcome: joiners start sessions.
	if err := rx(t, c, a, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo([]byte("ok"), a); err != nil {
		t.Fatal(err)
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "udp" }
func (a fakeAddr) String() string  { return string(a) }

// TestJoinerFlood: beyond WithMaxJoiners, new joiners are dropped and
// counted; known ones keep working; expired ones make room.
func TestJoinerFlood(t *testing.T) {
	c, _, clk := newRelay(t, WithMaxJoiners(4), WithIdleTimeout(time.Minute))
	for i := range 100 {
		if err := rx(t, c, joinerAt(byte(i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	if st.Joiners != 4 || st.DroppedJoinerLimit != 96 || st.Received != 4 {
		t.Fatalf("%+v", st)
	}
	for range 4 {
		read(t, c)
	}
	if err := rx(t, c, joinerAt(0), []byte("known")); err != nil {
		t.Fatal(err)
	}
	if d, _ := read(t, c); string(d) != "known" {
		t.Fatalf("%q", d)
	}
	clk.advance(2 * time.Minute)
	if err := rx(t, c, joinerAt(200), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Joiners != 1 || st.Expired != 4 {
		t.Fatalf("after expiry %+v", st)
	}
}

// TestQueueLimit: one joiner cannot queue more than WithQueueLen unread
// datagrams, and cannot starve another.
func TestQueueLimit(t *testing.T) {
	c, _, _ := newRelay(t, WithQueueLen(3), WithMaxJoiners(2))
	for range 10 {
		if err := rx(t, c, joinerAt(1), []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := rx(t, c, joinerAt(2), []byte("b")); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Received != 4 || st.DroppedQueueFull != 7 {
		t.Fatalf("%+v", st)
	}
	got := map[string]int{}
	for range 4 {
		d, _ := read(t, c)
		got[string(d)]++
	}
	if got["a"] != 3 || got["b"] != 1 {
		t.Fatalf("%v", got)
	}
	// Reading freed the queue.
	if err := rx(t, c, joinerAt(1), []byte("a")); err != nil {
		t.Fatal(err)
	}
	if c.Stats().Received != 5 {
		t.Fatal("queue not freed by reading")
	}
}

// TestMalformedAndFiltered: malformed RLY_RX are refused (4.00) and
// counted; other joiner ports and oversize datagrams are dropped and
// counted; nothing reaches ReadFrom.
func TestMalformedAndFiltered(t *testing.T) {
	c, _, _ := newRelay(t, WithMaxDatagram(100))
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"truncated TLV", []byte{0x12, 0x02, 0x03}},
		{"no encapsulation", []byte{0x12, 0x02, 0x03, 0xe1, 0x13, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x14, 0x02, 0x04, 0x00}},
		{"IID of 7 bytes", []byte{0x12, 0x02, 0x03, 0xe1, 0x13, 0x07, 1, 2, 3, 4, 5, 6, 7, 0x14, 0x02, 0x04, 0x00, 0x11, 0x00}},
		{"duplicate port", []byte{0x12, 0x02, 0x03, 0xe1, 0x12, 0x02, 0x03, 0xe1}},
	} {
		_, err := c.ServeCoAP(context.Background(), &coap.Request{Method: codes.POST, Payload: tc.payload})
		var ce *coap.Error
		if !errors.As(err, &ce) || ce.Code() != codes.BadRequest {
			t.Errorf("%s: %v, want 4.00", tc.name, err)
		}
	}
	if _, err := c.ServeCoAP(context.Background(), &coap.Request{Method: codes.GET}); err == nil {
		t.Error("GET accepted")
	}
	meshcopJoiner := Addr{IID: [8]byte{1}, Port: MeshCoPJoinerPort, Locator: 0x400}
	if err := rx(t, c, meshcopJoiner, []byte("ec-jpake hello")); err != nil {
		t.Fatal(err)
	}
	if err := rx(t, c, joinerAt(1), make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(make([]byte, 101), joinerAt(1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize write: %v", err)
	}
	st := c.Stats()
	if st.Malformed != 5 || st.DroppedPort != 1 || st.DroppedTooLarge != 2 || st.Received != 0 || st.Joiners != 0 {
		t.Fatalf("%+v", st)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := c.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom: %v", err)
	}
}

func TestJoinerPortsOption(t *testing.T) {
	c, _, _ := newRelay(t, WithJoinerPorts(CBRSKIJoinerPort, MeshCoPJoinerPort))
	if err := rx(t, c, Addr{IID: [8]byte{1}, Port: MeshCoPJoinerPort, Locator: 1}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if c.Stats().Received != 1 {
		t.Fatal("port 1000 not relayed")
	}
	for _, o := range []Option{WithJoinerPorts(), WithJoinerPorts(0), WithMaxJoiners(0), WithQueueLen(0),
		WithIdleTimeout(0), WithMaxDatagram(10), WithSendTimeout(0), WithClock(nil), nil} {
		if _, err := New(&sink{}, o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("option accepted: %v", err)
		}
	}
	if _, err := New(nil); !errors.Is(err, ErrInvalidOption) {
		t.Error("nil sender accepted")
	}
}

func TestSendErrorAndClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, s, _ := newRelay(t)
	a := joinerAt(1)
	if err := rx(t, c, a, []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.err = errors.New("session down")
	if _, err := c.WriteTo([]byte("y"), a); err == nil || c.Stats().SendErrors != 1 {
		t.Fatalf("send error: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 10))
		_, _, err = c.ReadFrom(make([]byte, 10))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock ReadFrom")
	}
	if _, err := c.WriteTo([]byte("z"), a); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	if _, err := c.ServeCoAP(context.Background(), &coap.Request{Method: codes.POST}); err == nil {
		t.Fatal("RLY_RX after Close accepted")
	}
}

// TestBoundedMemory: a flood of maximum-size datagrams for many joiners
// keeps at most maxJoiners*queueLen datagrams.
func TestBoundedMemory(t *testing.T) {
	c, _, _ := newRelay(t, WithMaxJoiners(8), WithQueueLen(4))
	big := make([]byte, DefaultMaxDatagram)
	for i := range 1000 {
		_ = rx(t, c, joinerAt(byte(i%50)), big)
	}
	if st := c.Stats(); st.Received != 32 || len(c.in) != 32 {
		t.Fatalf("queued %d, stats %+v", len(c.in), st)
	}
}

func FuzzServeCoAP(f *testing.F) {
	f.Add([]byte{0x12, 0x02, 0x03, 0xe1, 0x13, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x14, 0x02, 0x04, 0x00, 0x11, 0xff, 0x00, 0x01, 0x16})
	f.Add([]byte{0x11, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := New(&sink{}, WithMaxJoiners(2), WithQueueLen(2))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.ServeCoAP(context.Background(), &coap.Request{Method: codes.POST, Payload: b})
		r, perr := meshcop.ParseRelay(b)
		if (err != nil) != (perr != nil) {
			t.Fatalf("ServeCoAP %v but ParseRelay %v", err, perr)
		}
		if perr != nil {
			return
		}
		st := c.Stats()
		if st.Received+st.DroppedPort+st.DroppedTooLarge != 1 {
			t.Fatalf("datagram neither queued nor counted: %+v", st)
		}
		if st.Received == 1 {
			buf := make([]byte, 2048)
			n, from, err := c.ReadFrom(buf)
			if err != nil || string(buf[:n]) != string(r.Payload) || from.(Addr).IID != r.JoinerIID {
				t.Fatalf("read %q from %v: %v", buf[:n], from, err)
			}
		}
	})
}
