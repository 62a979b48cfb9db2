package sim

import (
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// peerQueue bounds datagrams from the commissioner waiting for the DTLS
// stack.
const peerQueue = 64

// peerConn is a net.PacketConn that carries one remote address's
// datagrams over a shared PacketConn: the Border Agent's view of its one
// commissioner. Close does not close the shared PacketConn.
type peerConn struct {
	pc     net.PacketConn
	raddr  net.Addr
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	rd     *deadline.Deadline
}

func newPeerConn(pc net.PacketConn, raddr net.Addr) *peerConn {
	return &peerConn{pc: pc, raddr: raddr, in: make(chan []byte, peerQueue), closed: make(chan struct{}), rd: deadline.New()}
}

// push queues a datagram; it reports false if the queue is full.
func (p *peerConn) push(b []byte) bool {
	select {
	case p.in <- b:
		return true
	default:
		return false
	}
}

func (p *peerConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-p.in:
		return copy(b, d), p.raddr, nil
	case <-p.closed:
		return 0, nil, net.ErrClosed
	case <-p.rd.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (p *peerConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-p.closed:
		return 0, net.ErrClosed
	default:
	}
	return p.pc.WriteTo(b, p.raddr)
}

func (p *peerConn) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func (p *peerConn) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.rd.Set(time.Time{})
	})
	return nil
}

func (p *peerConn) LocalAddr() net.Addr                { return p.pc.LocalAddr() }
func (p *peerConn) SetDeadline(t time.Time) error      { p.rd.Set(t); return nil }
func (p *peerConn) SetReadDeadline(t time.Time) error  { p.rd.Set(t); return nil }
func (p *peerConn) SetWriteDeadline(t time.Time) error { return nil }

// isClientHello reports whether b starts with a DTLS handshake record
// carrying a ClientHello (RFC 6347 §4.1 and §4.2.2: content type 22,
// handshake type 1 after the 13-byte record header).
func isClientHello(b []byte) bool {
	return len(b) > 13 && b[0] == 22 && b[13] == 1
}
