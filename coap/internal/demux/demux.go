// Package demux splits one net.PacketConn into per-peer virtual
// net.PacketConns, keyed by remote address. It implements pion/dtls's
// dtlsnet.PacketListener: a datagram from an unknown address creates a peer
// only if the Accept filter admits it (for DTLS: a ClientHello record), and
// the new peer is handed out by Accept.
//
// Everything is bounded: the number of peers, the per-peer receive queue,
// the accept backlog and the datagram size. Whatever exceeds a bound is
// dropped and reported through the Drop callback. Idle peers are closed
// after IdleTimeout. Close unblocks Serve, Accept and every peer.
package demux

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Reason says why a datagram was dropped.
type Reason string

// Drop reasons reported to Config.Drop.
const (
	// ReasonRejected: the first datagram from an unknown address did not
	// pass the Accept filter (garbage, or not a ClientHello).
	ReasonRejected Reason = "rejected"
	// ReasonPeerLimit: an unknown address arrived while MaxPeers peers exist.
	ReasonPeerLimit Reason = "peer_limit"
	// ReasonBacklog: the accept backlog was full.
	ReasonBacklog Reason = "backlog"
	// ReasonQueueFull: the peer's receive queue was full.
	ReasonQueueFull Reason = "queue_full"
	// ReasonTooBig: the datagram exceeded MaxDatagram.
	ReasonTooBig Reason = "too_big"
)

// Defaults applied to zero Config fields.
const (
	DefaultMaxPeers    = 1024
	DefaultQueueLen    = 32
	DefaultBacklog     = 64
	DefaultIdleTimeout = 2 * time.Minute
	DefaultMaxDatagram = 2048
)

// Config bounds a Demux. Zero fields take the defaults above.
type Config struct {
	// MaxPeers bounds the number of live peers.
	MaxPeers int
	// QueueLen bounds each peer's queue of received datagrams.
	QueueLen int
	// Backlog bounds peers created but not yet returned by Accept.
	Backlog int
	// IdleTimeout closes a peer that has not sent a datagram for this long.
	IdleTimeout time.Duration
	// MaxDatagram is the largest datagram accepted; larger ones are dropped.
	MaxDatagram int
	// Accept decides whether the first datagram from an unknown address
	// creates a peer. Nil admits everything.
	Accept func(datagram []byte) bool
	// Drop is called for every dropped datagram. It must not block.
	Drop func(Reason)
	// Now is the clock for idle accounting (time.Now if nil).
	Now func() time.Time
}

// Demux routes datagrams from one PacketConn to per-peer PacketConns.
type Demux struct {
	pc  net.PacketConn
	cfg Config

	mu     sync.Mutex
	peers  map[string]*Peer
	closed bool

	accept chan *Peer
	done   chan struct{}
	once   sync.Once
}

// New returns a Demux over pc. It owns pc from now on: Close closes it.
// Call Serve to start routing.
func New(pc net.PacketConn, cfg Config) *Demux {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = DefaultBacklog
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxDatagram <= 0 {
		cfg.MaxDatagram = DefaultMaxDatagram
	}
	if cfg.Drop == nil {
		cfg.Drop = func(Reason) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Demux{
		pc:     pc,
		cfg:    cfg,
		peers:  make(map[string]*Peer),
		accept: make(chan *Peer, cfg.Backlog),
		done:   make(chan struct{}),
	}
}

// Serve reads datagrams and routes them until Close. It returns nil after
// Close and the read error otherwise (after which the Demux is closed).
func (d *Demux) Serve() error {
	var wg sync.WaitGroup
	wg.Go(d.sweep)
	defer wg.Wait()
	buf := make([]byte, d.cfg.MaxDatagram+1)
	for {
		n, addr, err := d.pc.ReadFrom(buf)
		if err != nil {
			if d.isClosed() {
				return nil
			}
			_ = d.Close()
			return fmt.Errorf("demux: read: %w", err)
		}
		if n > d.cfg.MaxDatagram {
			d.cfg.Drop(ReasonTooBig)
			continue
		}
		if addr == nil {
			continue
		}
		d.route(addr, buf[:n])
	}
}

func (d *Demux) route(addr net.Addr, b []byte) {
	key := addr.String()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	p := d.peers[key]
	if p == nil {
		reason := d.admit(b)
		if reason != "" {
			d.mu.Unlock()
			d.cfg.Drop(reason)
			return
		}
		p = newPeer(d, addr, key)
		select {
		case d.accept <- p:
		default:
			d.mu.Unlock()
			d.cfg.Drop(ReasonBacklog)
			return
		}
		d.peers[key] = p
	}
	d.mu.Unlock()
	p.push(append([]byte(nil), b...), d.cfg.Now())
}

// admit decides on a datagram from an unknown address (d.mu held).
func (d *Demux) admit(b []byte) Reason {
	if d.cfg.Accept != nil && !d.cfg.Accept(b) {
		return ReasonRejected
	}
	if len(d.peers) >= d.cfg.MaxPeers {
		return ReasonPeerLimit
	}
	return ""
}

// sweep closes idle peers until Close. It looks at least once a second,
// so an injected clock that jumps is noticed promptly.
func (d *Demux) sweep() {
	period := max(min(d.cfg.IdleTimeout/4, time.Second), time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		}
		cutoff := d.cfg.Now().Add(-d.cfg.IdleTimeout).UnixNano()
		var idle []*Peer
		d.mu.Lock()
		for _, p := range d.peers {
			if p.last.Load() < cutoff {
				idle = append(idle, p)
			}
		}
		d.mu.Unlock()
		for _, p := range idle {
			_ = p.Close()
		}
	}
}

// Accept returns the next new peer and its address. It implements
// dtlsnet.PacketListener.
func (d *Demux) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case p := <-d.accept:
		return p, p.addr, nil
	case <-d.done:
		return nil, nil, ErrClosed
	}
}

// Addr is the local address of the underlying PacketConn.
func (d *Demux) Addr() net.Addr { return d.pc.LocalAddr() }

// Peers is the number of live peers.
func (d *Demux) Peers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.peers)
}

func (d *Demux) isClosed() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Close closes the underlying PacketConn and every peer, and unblocks
// Accept. Peers created but never accepted are closed too.
func (d *Demux) Close() error {
	var err error
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		peers := make([]*Peer, 0, len(d.peers))
		for _, p := range d.peers {
			peers = append(peers, p)
		}
		d.mu.Unlock()
		close(d.done)
		err = d.pc.Close()
		for _, p := range peers {
			_ = p.Close()
		}
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// forget removes p from the routing table if it is still registered.
func (d *Demux) forget(p *Peer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.peers[p.key] == p {
		delete(d.peers, p.key)
	}
}

// write sends b to addr on the shared PacketConn.
func (d *Demux) write(b []byte, addr net.Addr) (int, error) {
	return d.pc.WriteTo(b, addr)
}
