package demux

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// Peer is the virtual PacketConn of one remote address. It reads the
// datagrams the Demux routed to it and writes to its remote address only.
type Peer struct {
	d     *Demux
	addr  net.Addr
	key   string
	queue chan []byte
	last  atomic.Int64 // Unix nanoseconds of the last received datagram

	closed chan struct{}
	once   sync.Once
	rd, wd *deadline.Deadline
}

var _ net.PacketConn = (*Peer)(nil)

func newPeer(d *Demux, addr net.Addr, key string) *Peer {
	p := &Peer{
		d:      d,
		addr:   addr,
		key:    key,
		queue:  make(chan []byte, d.cfg.QueueLen),
		closed: make(chan struct{}),
		rd:     deadline.New(),
		wd:     deadline.New(),
	}
	p.last.Store(d.cfg.Now().UnixNano())
	return p
}

func (p *Peer) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

// push queues a received datagram, dropping it when the queue is full.
func (p *Peer) push(b []byte, now time.Time) {
	if p.isClosed() {
		return
	}
	p.last.Store(now.UnixNano())
	select {
	case p.queue <- b:
	default:
		p.d.cfg.Drop(ReasonQueueFull)
	}
}

func (p *Peer) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "demux", Source: p.d.Addr(), Addr: p.addr, Err: err}
}

// ReadFrom returns the next datagram from the peer's address.
func (p *Peer) ReadFrom(b []byte) (int, net.Addr, error) {
	if p.isClosed() {
		return 0, nil, p.opError("read", net.ErrClosed)
	}
	if p.rd.Err() != nil {
		return 0, nil, p.opError("read", os.ErrDeadlineExceeded)
	}
	select {
	case d := <-p.queue:
		return copy(b, d), p.addr, nil
	case <-p.rd.Done():
		return 0, nil, p.opError("read", os.ErrDeadlineExceeded)
	case <-p.closed:
		return 0, nil, p.opError("read", net.ErrClosed)
	}
}

// WriteTo writes b to the peer's address; addr is ignored, since a peer
// only ever talks to its own remote address.
func (p *Peer) WriteTo(b []byte, _ net.Addr) (int, error) {
	if p.isClosed() {
		return 0, p.opError("write", net.ErrClosed)
	}
	if p.wd.Err() != nil {
		return 0, p.opError("write", os.ErrDeadlineExceeded)
	}
	return p.d.write(b, p.addr)
}

// Close removes the peer from the Demux, so that the next datagram from
// its address is treated as a new peer, and unblocks its readers.
func (p *Peer) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.d.forget(p)
		p.rd.Set(time.Time{})
		p.wd.Set(time.Time{})
	})
	return nil
}

// LocalAddr is the Demux's local address.
func (p *Peer) LocalAddr() net.Addr { return p.d.Addr() }

// RemoteAddr is the peer's address.
func (p *Peer) RemoteAddr() net.Addr { return p.addr }

// SetDeadline sets both deadlines.
func (p *Peer) SetDeadline(t time.Time) error {
	p.rd.Set(t)
	p.wd.Set(t)
	return nil
}

// SetReadDeadline sets the ReadFrom deadline.
func (p *Peer) SetReadDeadline(t time.Time) error {
	p.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the WriteTo deadline.
func (p *Peer) SetWriteDeadline(t time.Time) error {
	p.wd.Set(t)
	return nil
}
