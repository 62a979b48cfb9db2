// Package relay terminates Thread's Joiner Router relay at an external
// commissioner and presents it as a net.PacketConn, so that an unchanged
// DTLS server (the cBRSKI registrar: gateway.ServeDTLS) serves Thread
// joiners.
//
// A joiner's UDP datagrams reach the Joiner Router on the mesh, which
// wraps each in an RLY_RX.ntf (CoAP POST c/rx with the Joiner UDP Port,
// Joiner IID, Joiner Router Locator and Joiner DTLS Encapsulation TLVs) to
// the Border Agent, which forwards it on the commissioner's DTLS session.
// Answers travel back as RLY_TX.ntf (c/tx, Non-confirmable, the same TLVs)
// and the Joiner Router sends them to [fe80::IID]:port. Thread 1.4 §8.4.3;
// OpenThread src/core/meshcop/joiner_router.cpp and border_agent.cpp;
// ot-commissioner src/library/joiner_session.cpp (RelaySocket, the same
// idea in C++).
//
// The Conn's peers are Addr values (IID, port, locator). ServeCoAP
// consumes c/rx (register it on the commissioner session for
// meshcop.PathRelayRx); WriteTo sends c/tx through a Sender (the
// commissioner).
//
// # Joiner Router KEK
//
// RLY_TX carries a Joiner Router KEK TLV with the message that completes a
// MeshCoP join (JOIN_FIN.rsp): the Joiner Router then sends JOIN_ENT.ntf
// with the network key, secured with that KEK, derived from the DTLS key
// block (ot-commissioner SendRlyTx, dtls.cpp HandleMbedtlsExportKeys). A
// cBRSKI Autonomous Enrollment session (source port 993) ends with an
// LDevID, not with JOIN_FIN/JOIN_ENT, and needs no KEK; the network key
// comes later through CCM Network Key Provisioning (port 994), which
// Tumbler does not serve. This relay never sends a KEK, and pion/dtls
// exposes no key block to derive one from.
//
// # Bounds
//
// At most WithMaxJoiners joiners, WithQueueLen unread datagrams each,
// datagrams up to WithMaxDatagram; a joiner idle for WithIdleTimeout is
// forgotten (lazily, with the injected clock: no goroutine). Everything
// refused is counted in Stats.
package relay

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/deadline"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// Sender sends a Non-confirmable request (RLY_TX.ntf) on the
// commissioner's session with the Border Agent.
type Sender interface {
	Notify(ctx context.Context, r *coap.Request) error
}

// Stats counts relay traffic since New.
type Stats struct {
	// Received RLY_RX datagrams queued for reading; Sent RLY_TX datagrams.
	Received, Sent uint64
	// Joiners is the number of joiners tracked now.
	Joiners int
	// Malformed RLY_RX payloads (bad TLVs, missing relay TLVs).
	Malformed uint64
	// DroppedPort: RLY_RX from a joiner port not served (WithJoinerPorts).
	DroppedPort uint64
	// DroppedJoinerLimit: RLY_RX from a new joiner while WithMaxJoiners
	// are tracked.
	DroppedJoinerLimit uint64
	// DroppedQueueFull: RLY_RX for a joiner with WithQueueLen datagrams
	// unread.
	DroppedQueueFull uint64
	// DroppedTooLarge: datagrams above WithMaxDatagram, either direction.
	DroppedTooLarge uint64
	// UnknownJoiner: WriteTo for a joiner not tracked (never seen, or
	// expired).
	UnknownJoiner uint64
	// SendErrors: RLY_TX sends the Sender failed.
	SendErrors uint64
	// Expired joiners forgotten after the idle timeout.
	Expired uint64
}

type counters struct {
	received, sent, malformed, port, limit, queue, tooLarge, unknown, sendErr, expired atomic.Uint64
}

type joiner struct {
	queued int
	last   time.Time
}

type datagram struct {
	from Addr
	j    *joiner
	data []byte
}

// Conn is the relay. It implements net.PacketConn (for the registrar's
// DTLS server) and coap.Handler (for c/rx).
type Conn struct {
	send   Sender
	cfg    config
	log    zerolog.Logger
	pktLog zerolog.Logger
	stats  counters

	in     chan datagram
	closed chan struct{}
	once   sync.Once
	rd, wd *deadline.Deadline
	// writeDeadline bounds the Sender call of WriteTo.
	writeDeadline atomic.Pointer[time.Time]

	mu      sync.Mutex
	joiners map[Addr]*joiner
}

var (
	_ net.PacketConn = (*Conn)(nil)
	_ coap.Handler   = (*Conn)(nil)
)

// New returns a relay sending RLY_TX through send.
func New(send Sender, opts ...Option) (*Conn, error) {
	if send == nil {
		return nil, invalid("nil Sender")
	}
	cfg := defaults()
	for _, o := range opts {
		if o == nil {
			return nil, invalid("nil option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	log := cfg.log.With().Str("component", "thread-relay").Logger()
	return &Conn{
		send:    send,
		cfg:     cfg,
		log:     log,
		pktLog:  log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second}),
		in:      make(chan datagram, cfg.maxJoiners*cfg.queueLen),
		closed:  make(chan struct{}),
		rd:      deadline.New(),
		wd:      deadline.New(),
		joiners: make(map[Addr]*joiner),
	}, nil
}

// ServeCoAP consumes an RLY_RX.ntf (POST c/rx) from the Border Agent and
// queues the joiner's datagram for ReadFrom. A malformed payload is
// answered 4.00 (a Non-confirmable notification gets no answer at all)
// and counted; datagrams refused by a bound are dropped silently, as a
// Joiner Router drops them, and counted.
func (c *Conn) ServeCoAP(_ context.Context, r *coap.Request) (*coap.Response, error) {
	if r.Method != codes.POST {
		return nil, coap.Errorf(codes.MethodNotAllowed, "RLY_RX is a POST", nil)
	}
	rx, err := meshcop.ParseRelay(r.Payload)
	if err != nil {
		c.stats.malformed.Add(1)
		c.pktLog.Debug().Err(err).Msg("malformed RLY_RX dropped")
		return nil, coap.Errorf(codes.BadRequest, "malformed RLY_RX", err)
	}
	from := Addr{IID: rx.JoinerIID, Port: rx.JoinerUDPPort, Locator: rx.JoinerRouterLocator}
	switch {
	case c.isClosed():
		return nil, coap.Errorf(codes.ServiceUnavailable, "relay closed", ErrClosed)
	case !c.cfg.ports[rx.JoinerUDPPort]:
		c.stats.port.Add(1)
		c.pktLog.Debug().Stringer("joiner", from).Msg("RLY_RX from a joiner port not served")
		return nil, nil
	case len(rx.Payload) > c.cfg.maxDatagram:
		c.stats.tooLarge.Add(1)
		return nil, nil
	}
	c.mu.Lock()
	now := c.cfg.now()
	j := c.lookup(from, now)
	if j == nil {
		if len(c.joiners) >= c.cfg.maxJoiners {
			c.expire(now)
		}
		if len(c.joiners) >= c.cfg.maxJoiners {
			c.mu.Unlock()
			c.stats.limit.Add(1)
			c.pktLog.Debug().Stringer("joiner", from).Msg("joiner limit: RLY_RX dropped")
			return nil, nil
		}
		j = &joiner{}
		c.joiners[from] = j
		c.log.Debug().Stringer("joiner", from).Str("joiner_id", meshcop.JoinerIDFromIID(from.IID).String()).Msg("new joiner")
	}
	if j.queued >= c.cfg.queueLen {
		c.mu.Unlock()
		c.stats.queue.Add(1)
		return nil, nil
	}
	j.queued++
	j.last = now
	c.mu.Unlock()
	// The channel holds maxJoiners*queueLen: a joiner below its queue bound
	// always finds room.
	select {
	case c.in <- datagram{from: from, j: j, data: append([]byte(nil), rx.Payload...)}:
		c.stats.received.Add(1)
	default:
		c.mu.Lock()
		j.queued--
		c.mu.Unlock()
		c.stats.queue.Add(1)
	}
	return nil, nil
}

// lookup returns the live joiner at a, forgetting it if it expired
// (c.mu held).
func (c *Conn) lookup(a Addr, now time.Time) *joiner {
	j := c.joiners[a]
	if j != nil && now.Sub(j.last) > c.cfg.idle {
		delete(c.joiners, a)
		c.stats.expired.Add(1)
		return nil
	}
	return j
}

// expire forgets every idle joiner (c.mu held).
func (c *Conn) expire(now time.Time) {
	for a, j := range c.joiners {
		if now.Sub(j.last) > c.cfg.idle {
			delete(c.joiners, a)
			c.stats.expired.Add(1)
		}
	}
}

// ReadFrom returns the next joiner datagram and its Addr. A datagram
// longer than p is truncated, as with UDP.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.isClosed() {
		return 0, nil, c.opError("read", nil, net.ErrClosed)
	}
	select {
	case d := <-c.in:
		c.mu.Lock()
		d.j.queued--
		c.mu.Unlock()
		return copy(p, d.data), d.from, nil
	case <-c.rd.Done():
		return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
	case <-c.closed:
		return 0, nil, c.opError("read", nil, net.ErrClosed)
	}
}

// WriteTo relays p to the joiner at addr with an RLY_TX.ntf. The joiner
// must be tracked: it sent an RLY_RX and has not been idle for the idle
// timeout; otherwise the error wraps ErrUnknownJoiner.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.isClosed() {
		return 0, c.opError("write", addr, net.ErrClosed)
	}
	if c.wd.Err() != nil {
		return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
	}
	to, err := asAddr(addr)
	if err != nil {
		c.stats.unknown.Add(1)
		return 0, c.opError("write", addr, err)
	}
	if len(p) > c.cfg.maxDatagram {
		c.stats.tooLarge.Add(1)
		return 0, c.opError("write", addr, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(p)))
	}
	c.mu.Lock()
	now := c.cfg.now()
	j := c.lookup(to, now)
	if j != nil {
		j.last = now
	}
	c.mu.Unlock()
	if j == nil {
		c.stats.unknown.Add(1)
		return 0, c.opError("write", addr, ErrUnknownJoiner)
	}
	tx := &meshcop.Relay{JoinerUDPPort: to.Port, JoinerIID: to.IID, JoinerRouterLocator: to.Locator, Payload: p}
	payload, err := tx.MarshalBinary()
	if err != nil {
		return 0, c.opError("write", addr, err)
	}
	dl := time.Now().Add(c.cfg.sendTimeout)
	if w := c.writeDeadline.Load(); w != nil && !w.IsZero() && w.Before(dl) {
		dl = *w
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	err = c.send.Notify(ctx, &coap.Request{Method: codes.POST, Path: meshcop.PathRelayTx,
		ContentFormat: coap.FormatNone, Accept: coap.FormatNone, Payload: payload})
	if err != nil {
		c.stats.sendErr.Add(1)
		return 0, c.opError("write", addr, err)
	}
	c.stats.sent.Add(1)
	return len(p), nil
}

// Forget drops the joiner at a, as if it had expired.
func (c *Conn) Forget(a Addr) {
	c.mu.Lock()
	delete(c.joiners, a)
	c.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	n := len(c.joiners)
	c.mu.Unlock()
	return Stats{
		Received: c.stats.received.Load(), Sent: c.stats.sent.Load(), Joiners: n,
		Malformed: c.stats.malformed.Load(), DroppedPort: c.stats.port.Load(),
		DroppedJoinerLimit: c.stats.limit.Load(), DroppedQueueFull: c.stats.queue.Load(),
		DroppedTooLarge: c.stats.tooLarge.Load(), UnknownJoiner: c.stats.unknown.Load(),
		SendErrors: c.stats.sendErr.Load(), Expired: c.stats.expired.Load(),
	}
}

// Close stops the relay: ReadFrom and WriteTo fail with net.ErrClosed and
// RLY_RX is refused.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.mu.Lock()
		clear(c.joiners)
		c.mu.Unlock()
		c.rd.Set(time.Time{})
		c.wd.Set(time.Time{})
	})
	return nil
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *Conn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: Network, Source: localAddr{}, Addr: addr, Err: err}
}

// LocalAddr is the relay itself; its String is "thread-relay".
func (c *Conn) LocalAddr() net.Addr { return localAddr{} }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.Set(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the ReadFrom deadline; zero means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the WriteTo deadline; zero means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wd.Set(t)
	c.writeDeadline.Store(&t)
	return nil
}
