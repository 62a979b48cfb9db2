package btp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// testTimeout bounds every blocking step of a test.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// pipe is an in-memory GATT connection: values go through bounded
// channels, in order, without loss, like ATT writes and indications.
type pipe struct {
	mtu        int
	subscribed chan struct{}
	subOnce    sync.Once
	closed     chan struct{}
	closeOnce  sync.Once
}

// end is one side of a pipe. It implements btp.CentralLink and
// btp.PeripheralLink; the tests also drive ends by hand as a raw peer.
type end struct {
	p    *pipe
	name string
	peer string
	in   chan []byte
	out  chan []byte

	mu   sync.Mutex
	sent [][]byte // every value sent, for assertions
}

var (
	_ btp.CentralLink    = (*end)(nil)
	_ btp.PeripheralLink = (*end)(nil)
)

func newPipe(mtu int) (central, peripheral *end) {
	p := &pipe{mtu: mtu, subscribed: make(chan struct{}), closed: make(chan struct{})}
	c2p := make(chan []byte, 8)
	p2c := make(chan []byte, 8)
	central = &end{p: p, name: "central", peer: "peripheral", in: p2c, out: c2p}
	peripheral = &end{p: p, name: "peripheral", peer: "central", in: c2p, out: p2c}
	return central, peripheral
}

func (e *end) Send(ctx context.Context, v []byte) error {
	if len(v) > e.p.mtu-3 {
		return fmt.Errorf("pipe: %d-octet value, ATT_MTU %d", len(v), e.p.mtu)
	}
	select {
	case <-e.p.closed:
		return btp.ErrLinkClosed
	default:
	}
	c := append([]byte(nil), v...)
	// Recorded before the peer can take it, so a test that saw it arrive
	// also sees it in sentValues.
	e.mu.Lock()
	e.sent = append(e.sent, c)
	e.mu.Unlock()
	select {
	case e.out <- c:
		return nil
	case <-e.p.closed:
		e.unrecord()
		return btp.ErrLinkClosed
	case <-ctx.Done():
		e.unrecord()
		return ctx.Err()
	}
}

func (e *end) unrecord() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = e.sent[:len(e.sent)-1]
}

func (e *end) Receive(ctx context.Context) ([]byte, error) {
	select {
	case v := <-e.in:
		return v, nil
	case <-e.p.closed:
		return nil, btp.ErrLinkClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *end) ATTMTU() int  { return e.p.mtu }
func (e *end) Peer() string { return e.peer }

func (e *end) Close() error {
	e.p.closeOnce.Do(func() { close(e.p.closed) })
	return nil
}

func (e *end) Subscribe(ctx context.Context) error {
	e.p.subOnce.Do(func() { close(e.p.subscribed) })
	return nil
}

func (e *end) WaitSubscribed(ctx context.Context) error {
	select {
	case <-e.p.subscribed:
		return nil
	case <-e.p.closed:
		return btp.ErrLinkClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *end) isClosed() bool {
	select {
	case <-e.p.closed:
		return true
	default:
		return false
	}
}

func (e *end) sentValues() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]byte(nil), e.sent...)
}

// connect runs the handshake over a new pipe and returns both Conns,
// closed at the end of the test.
func connect(t *testing.T, mtu int, copts, sopts []btp.Option) (c, s *btp.Conn, ce, pe *end) {
	t.Helper()
	ce, pe = newPipe(mtu)
	ctx := testContext(t)
	type result struct {
		c   *btp.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := btp.Server(ctx, pe, sopts...)
		done <- result{s, err}
	}()
	c, err := btp.Client(ctx, ce, copts...)
	r := <-done
	if err != nil || r.err != nil {
		t.Fatalf("handshake: client %v, server %v", err, r.err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = r.c.Close()
	})
	return c, r.c, ce, pe
}

// eventually polls cond until it holds or the test times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantErr(t *testing.T, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("error %v, want %v", got, want)
	}
}
