package joinproxy

import (
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap/internal/demux"
)

// RegistrarConn is the registrar's side of stateless mode: a net.PacketConn
// over the registrar's JPY socket that hides the JPY encapsulation, so the
// unchanged DTLS server serves pledges behind stateless join proxies:
//
//	srv.ServeDTLS(ctx, joinproxy.NewRegistrarConn(jpySocket))
//
// ReadFrom decodes each JPY message and returns its content (the pledge's
// DTLS record) from a *PeerAddr naming the join proxy's address and the
// header: the draft's 5-tuple (IP_Jr:p_Jr, IP_R:p_Rj, H), one peer per
// pledge. WriteTo to that *PeerAddr wraps the record in a JPY message with
// the same header and sends it to the join proxy. The header is never
// interpreted.
//
// Peers are bounded in total and per join proxy (WithMaxPeers) and forgotten
// after WithPeerTimeout without traffic; a datagram that would create a
// peer must be a DTLS ClientHello. Malformed JPY messages, refused peers
// and oversized datagrams are dropped and counted.
//
// draft-ietf-anima-constrained-join-proxy §"Stateless Join Proxy",
// §"Processing by Registrar".
type RegistrarConn struct {
	pc     net.PacketConn
	cfg    config
	pktLog zerolog.Logger
	ctr    *counters

	rmu  sync.Mutex // serialises ReadFrom: one buffer
	rbuf []byte

	mu        sync.Mutex
	peers     map[string]*jpyPeer
	perJP     map[string]int
	lastSweep time.Time
}

type jpyPeer struct {
	jp   string
	last time.Time
}

// PeerAddr is a pledge behind a stateless join proxy, as a RegistrarConn
// presents it: the join proxy's address and the JPY header it gave the
// pledge's datagrams.
type PeerAddr struct {
	jp     net.Addr
	header string
	key    string
}

func newPeerAddr(jp net.Addr, header []byte) *PeerAddr {
	h := string(header)
	return &PeerAddr{jp: jp, header: h, key: "jpy://" + jp.String() + "/" + hex.EncodeToString(header)}
}

// Network is "jpy".
func (a *PeerAddr) Network() string { return "jpy" }

// String is "jpy://<join proxy address>/<header in hex>": distinct for
// distinct peers, so DTLS servers can key associations on it.
func (a *PeerAddr) String() string { return a.key }

// JoinProxy is the join proxy's address (IP_Jr:p_Jr).
func (a *PeerAddr) JoinProxy() net.Addr { return a.jp }

// Header is a copy of the JPY header.
func (a *PeerAddr) Header() []byte { return []byte(a.header) }

// NewRegistrarConn returns a RegistrarConn over pc, the registrar's JPY
// socket (p_Rj), which it owns: Close closes it. Options: WithLogger,
// WithMetrics, WithClock, WithMaxDatagram, WithMaxPeers, WithPeerTimeout.
func NewRegistrarConn(pc net.PacketConn, opts ...Option) (*RegistrarConn, error) {
	if pc == nil {
		return nil, invalid("nil PacketConn")
	}
	cfg, err := newConfig(modeRegistrar, opts)
	if err != nil {
		return nil, err
	}
	c := &RegistrarConn{
		pc:     pc,
		cfg:    cfg,
		pktLog: sampled(cfg.log),
		rbuf:   make([]byte, MaxMessage+1),
		peers:  make(map[string]*jpyPeer),
		perJP:  make(map[string]int),
	}
	if c.ctr, err = newCounters(modeRegistrar, cfg.reg, c.active, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// Stats returns the counters; Active is the number of peers.
func (c *RegistrarConn) Stats() Stats { return c.ctr.snapshot() }

func (c *RegistrarConn) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peers)
}

// ReadFrom returns the content of the next acceptable JPY message and its
// *PeerAddr. Content longer than p is truncated, as UDP does. Errors are
// those of the underlying socket.
func (c *RegistrarConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		n, from, err := c.pc.ReadFrom(c.rbuf)
		if err != nil {
			return 0, nil, err
		}
		if n > MaxMessage {
			c.ctr.drop(dropTooBig)
			continue
		}
		if from == nil {
			continue
		}
		m, err := Decode(c.rbuf[:n])
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				c.ctr.drop(dropTooBig)
			} else {
				c.ctr.drop(dropMalformed)
			}
			c.pktLog.Debug().Err(err).Stringer("jp", from).Msg("JPY message dropped")
			continue
		}
		if len(m.Content) > c.cfg.maxDatagram {
			c.ctr.drop(dropTooBig)
			continue
		}
		addr := newPeerAddr(from, m.Header)
		if r, ok := c.admit(addr, m.Content); !ok {
			c.ctr.drop(r)
			c.pktLog.Debug().Str("reason", string(reasons[r])).Stringer("peer", addr).Msg("JPY peer refused")
			continue
		}
		c.ctr.up.Add(1)
		return copy(p, m.Content), addr, nil
	}
}

// admit records a datagram from peer a, creating the peer within bounds
// if content may start an association.
func (c *RegistrarConn) admit(a *PeerAddr, content []byte) (reasonID, bool) {
	now := c.cfg.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.peers[a.key]; p != nil {
		p.last = now
		return 0, true
	}
	if !demux.IsClientHello(content) {
		return dropRejected, false
	}
	jp := a.jp.String()
	full := func() bool { return len(c.peers) >= c.cfg.maxPeers || c.perJP[jp] >= c.cfg.maxPeersPerJP }
	if full() && now.Sub(c.lastSweep) >= c.sweepEvery() {
		c.expireLocked(now)
	}
	if full() {
		return dropPeerLimit, false
	}
	c.peers[a.key] = &jpyPeer{jp: jp, last: now}
	c.perJP[jp]++
	return 0, true
}

// sweepEvery rate-limits the O(peers) expiry scan that a full table
// triggers.
func (c *RegistrarConn) sweepEvery() time.Duration {
	return min(c.cfg.peerTimeout/4, time.Second)
}

func (c *RegistrarConn) expireLocked(now time.Time) {
	c.lastSweep = now
	for k, p := range c.peers {
		if now.Sub(p.last) >= c.cfg.peerTimeout {
			delete(c.peers, k)
			if c.perJP[p.jp]--; c.perJP[p.jp] <= 0 {
				delete(c.perJP, p.jp)
			}
		}
	}
}

// WriteTo wraps b in a JPY message with the header of addr, a *PeerAddr
// from ReadFrom, and sends it to addr's join proxy. Any other address
// fails with ErrNotPeer.
func (c *RegistrarConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	a, ok := addr.(*PeerAddr)
	if !ok || a == nil || a.jp == nil {
		return 0, &net.OpError{Op: "write", Net: "jpy", Addr: addr, Err: ErrNotPeer}
	}
	msg, err := Message{Header: []byte(a.header), Content: b}.Encode()
	if err != nil {
		c.ctr.drop(dropTooBig)
		return 0, &net.OpError{Op: "write", Net: "jpy", Addr: addr, Err: err}
	}
	if _, err := c.pc.WriteTo(msg, a.jp); err != nil {
		c.ctr.drop(dropWrite)
		return 0, err
	}
	c.mu.Lock()
	if p := c.peers[a.key]; p != nil {
		p.last = c.cfg.now()
	}
	c.mu.Unlock()
	c.ctr.down.Add(1)
	return len(b), nil
}

// Close closes the JPY socket.
func (c *RegistrarConn) Close() error { return c.pc.Close() }

// LocalAddr is the JPY socket's address.
func (c *RegistrarConn) LocalAddr() net.Addr { return c.pc.LocalAddr() }

// SetDeadline sets the JPY socket's deadlines.
func (c *RegistrarConn) SetDeadline(t time.Time) error { return c.pc.SetDeadline(t) }

// SetReadDeadline sets the JPY socket's read deadline.
func (c *RegistrarConn) SetReadDeadline(t time.Time) error { return c.pc.SetReadDeadline(t) }

// SetWriteDeadline sets the JPY socket's write deadline.
func (c *RegistrarConn) SetWriteDeadline(t time.Time) error { return c.pc.SetWriteDeadline(t) }

var _ net.PacketConn = (*RegistrarConn)(nil)
