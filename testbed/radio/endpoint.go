package radio

import (
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/transport/v5/deadline"
)

type datagram struct {
	from Addr
	data []byte
}

type enqueueResult int

const (
	enqueued enqueueResult = iota
	queueFull
	endpointClosed
)

// endpoint is one net.PacketConn on a Network.
type endpoint struct {
	n      *Network
	addr   Addr
	queue  chan datagram
	closed chan struct{}
	once   sync.Once
	rd, wd *deadline.Deadline
}

var _ net.PacketConn = (*endpoint)(nil)

func newEndpoint(n *Network, addr Addr, queueLen int) *endpoint {
	return &endpoint{
		n:      n,
		addr:   addr,
		queue:  make(chan datagram, queueLen),
		closed: make(chan struct{}),
		rd:     deadline.New(),
		wd:     deadline.New(),
	}
}

func (e *endpoint) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

func (e *endpoint) enqueue(d datagram) enqueueResult {
	if e.isClosed() {
		return endpointClosed
	}
	select {
	case e.queue <- d:
		return enqueued
	default:
		return queueFull
	}
}

func (e *endpoint) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "radio", Addr: e.addr, Err: err}
}

// ReadFrom blocks until a datagram arrives, the read deadline passes
// (os.ErrDeadlineExceeded) or the endpoint is closed (net.ErrClosed). A
// datagram longer than p is truncated, as with UDP.
func (e *endpoint) ReadFrom(p []byte) (int, net.Addr, error) {
	if e.isClosed() {
		return 0, nil, e.opError("read", net.ErrClosed)
	}
	if e.rd.Err() != nil {
		return 0, nil, e.opError("read", os.ErrDeadlineExceeded)
	}
	select {
	case d := <-e.queue:
		return copy(p, d.data), d.from, nil
	case <-e.rd.Done():
		return 0, nil, e.opError("read", os.ErrDeadlineExceeded)
	case <-e.closed:
		return 0, nil, e.opError("read", net.ErrClosed)
	}
}

// WriteTo sends p to addr. Like UDP it never blocks and does not report
// loss: a datagram that the link drops still counts as written.
func (e *endpoint) WriteTo(p []byte, addr net.Addr) (int, error) {
	if e.isClosed() {
		return 0, e.opError("write", net.ErrClosed)
	}
	if e.wd.Err() != nil {
		return 0, e.opError("write", os.ErrDeadlineExceeded)
	}
	if addr == nil {
		return 0, e.opError("write", ErrInvalidAddr)
	}
	e.n.transmit(e.addr, addr.String(), p)
	return len(p), nil
}

// Close removes the endpoint from the Network and unblocks readers.
func (e *endpoint) Close() error {
	if e.isClosed() {
		return e.opError("close", net.ErrClosed)
	}
	e.shutdown()
	return nil
}

func (e *endpoint) shutdown() {
	e.once.Do(func() {
		close(e.closed)
		e.n.remove(e)
		// Stop pending deadline timers.
		e.rd.Set(time.Time{})
		e.wd.Set(time.Time{})
	})
}

// LocalAddr is the endpoint's Addr.
func (e *endpoint) LocalAddr() net.Addr { return e.addr }

// SetDeadline sets the read and write deadlines.
func (e *endpoint) SetDeadline(t time.Time) error {
	e.rd.Set(t)
	e.wd.Set(t)
	return nil
}

// SetReadDeadline sets the deadline for ReadFrom; zero means none.
func (e *endpoint) SetReadDeadline(t time.Time) error {
	e.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the deadline for WriteTo; zero means none.
func (e *endpoint) SetWriteDeadline(t time.Time) error {
	e.wd.Set(t)
	return nil
}
