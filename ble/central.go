package ble

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// LinkSource yields GATT links to pledges, connected and with C1 and C2
// discovered: the BlueZ scanner (package ble/bluez) or the simulator
// (package ble/sim).
type LinkSource interface {
	// Accept returns the next pledge's link. An error other than ctx's
	// ends Central.Serve.
	Accept(ctx context.Context) (btp.CentralLink, error)
}

// Central is the gateway's side of BLE onboarding: it is the BLE central
// and BTP client of every pledge link, and one net.PacketConn to the
// registrar, each BLE link a peer with its own Addr. A datagram is one BTP
// message. Hand it to coap.Server.ServeDTLS (or gateway.ServeDTLS) like a
// UDP socket; run Serve to feed it links.
//
// Like UDP, WriteTo does not block and does not report loss: a datagram to
// a link that is gone, or that finds the link's send queue full, is
// dropped and counted. Received datagrams wait in one bounded queue.
type Central struct {
	cfg     config
	log     zerolog.Logger
	local   Addr
	inbound chan datagram
	slots   chan struct{} // one per session, in handshake or established
	deadlines
	done    chan struct{}
	wg      sync.WaitGroup
	linkSeq atomic.Uint64

	mu       sync.Mutex
	closed   bool
	sessions map[string]*session
	ended    map[string]uint64

	accepted, refused, failed     atomic.Uint64
	in, out                       atomic.Uint64
	dropInbound, dropFull, noPeer atomic.Uint64
}

type datagram struct {
	from Addr
	b    []byte
}

type session struct {
	addr Addr
	conn *btp.Conn
}

var _ net.PacketConn = (*Central)(nil)

// NewCentral returns a Central without links; see Serve and Attach.
func NewCentral(opts ...Option) (*Central, error) {
	cfg, err := newConfig(DefaultCentralName, opts)
	if err != nil {
		return nil, err
	}
	return &Central{
		cfg:       cfg,
		log:       cfg.log,
		local:     Addr{Device: cfg.name},
		inbound:   make(chan datagram, cfg.queueLen),
		slots:     make(chan struct{}, cfg.maxLinks),
		deadlines: newDeadlines(),
		done:      make(chan struct{}),
		sessions:  make(map[string]*session),
		ended:     make(map[string]uint64),
	}, nil
}

// Serve attaches the links src yields until ctx is done or the Central is
// closed, then returns nil; an Accept error ends it early. Handshakes run
// concurrently, at most WithMaxLinks sessions at a time.
func (c *Central) Serve(ctx context.Context, src LinkSource) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	})
	for {
		link, err := src.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ble: accept: %w", err)
		}
		wg.Go(func() {
			if _, err := c.Attach(ctx, link); err != nil && ctx.Err() == nil {
				c.log.Debug().Str("device", link.Peer()).Err(err).Msg("BLE link refused")
			}
		})
	}
}

// Attach runs the BTP handshake as client on link and adds the session;
// it returns the session's address. Attach owns link: it is closed when
// the session ends or the handshake fails.
func (c *Central) Attach(ctx context.Context, link btp.CentralLink) (Addr, error) {
	select {
	case <-c.done:
		_ = link.Close()
		return Addr{}, net.ErrClosed
	default:
	}
	select {
	case c.slots <- struct{}{}:
	default:
		_ = link.Close()
		c.refused.Add(1)
		return Addr{}, fmt.Errorf("%w: %d sessions", ErrLinkLimit, c.cfg.maxLinks)
	}
	conn, err := btp.Client(ctx, link, c.cfg.btpOptions()...)
	if err != nil {
		<-c.slots
		c.failed.Add(1)
		return Addr{}, err
	}
	s := &session{addr: Addr{Device: link.Peer(), Link: c.linkSeq.Add(1)}, conn: conn}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = conn.Close()
		<-c.slots
		return Addr{}, net.ErrClosed
	}
	c.sessions[s.addr.String()] = s
	c.wg.Add(1)
	c.mu.Unlock()
	c.accepted.Add(1)
	c.log.Debug().Stringer("peer", s.addr).Int("segment", conn.Params().SegmentSize).Msg("BLE session open")
	go c.pump(s)
	return s.addr, nil
}

// pump moves a session's messages to the inbound queue until it ends.
func (c *Central) pump(s *session) {
	defer c.wg.Done()
	for {
		m, err := s.conn.Receive(context.Background())
		if err != nil {
			break
		}
		select {
		case c.inbound <- datagram{from: s.addr, b: m}:
			c.in.Add(1)
		default:
			c.dropInbound.Add(1)
		}
	}
	_ = s.conn.Close()
	reason := Reason(s.conn.Err())
	c.mu.Lock()
	delete(c.sessions, s.addr.String())
	c.ended[reason]++
	c.mu.Unlock()
	<-c.slots
	c.log.Debug().Stringer("peer", s.addr).Str("reason", reason).Msg("BLE session closed")
}

// ReadFrom returns the next datagram from any session and its address.
// A datagram longer than p is truncated, as with UDP.
func (c *Central) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-c.inbound:
		return copy(p, d.b), d.from, nil
	case <-c.rd.Done():
		return 0, nil, c.opError("read", os.ErrDeadlineExceeded)
	case <-c.done:
		return 0, nil, c.opError("read", net.ErrClosed)
	}
}

// WriteTo sends p as one BTP message on the session addr names.
func (c *Central) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, c.opError("write", net.ErrClosed)
	default:
	}
	if c.wd.Err() != nil {
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	if addr == nil {
		return 0, c.opError("write", ErrNoRoute)
	}
	c.mu.Lock()
	s := c.sessions[addr.String()]
	c.mu.Unlock()
	if s == nil {
		c.noPeer.Add(1)
		return len(p), nil
	}
	return c.send(s.conn, p)
}

func (c *Central) send(conn *btp.Conn, p []byte) (int, error) {
	switch err := conn.TrySend(p); {
	case err == nil:
		c.out.Add(1)
	case errors.Is(err, btp.ErrQueueFull):
		c.dropFull.Add(1)
	case errors.Is(err, btp.ErrClosed):
		c.noPeer.Add(1)
	default:
		return 0, c.opError("write", err)
	}
	return len(p), nil
}

// Close closes every session and unblocks ReadFrom and Serve. It waits
// for the sessions' goroutines.
func (c *Central) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	close(c.done)
	conns := make([]*btp.Conn, 0, len(c.sessions))
	for _, s := range c.sessions {
		conns = append(conns, s.conn)
	}
	c.mu.Unlock()
	for _, conn := range conns {
		_ = conn.Close()
	}
	c.wg.Wait()
	c.rd.Set(time.Time{})
	c.wd.Set(time.Time{})
	return nil
}

// LocalAddr is the gateway's own address (WithName).
func (c *Central) LocalAddr() net.Addr { return c.local }

// DTLSFlightInterval is the DTLS retransmission interval for sessions on
// this Central (coap.FlightIntervalHinter): see the constant.
func (c *Central) DTLSFlightInterval() time.Duration { return DTLSFlightInterval }

func (c *Central) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "ble", Addr: c.local, Err: err}
}

// CentralStats counts a Central's links and datagrams since it was made.
type CentralStats struct {
	// LinksAccepted counts established sessions; LinksRefused links over
	// the limit; HandshakesFailed links whose BTP handshake failed.
	LinksAccepted, LinksRefused, HandshakesFailed uint64
	// Sessions is the number of sessions open now.
	Sessions int
	// Ended counts closed sessions by Reason.
	Ended map[string]uint64
	// DatagramsIn and DatagramsOut count datagrams queued for the reader
	// and handed to a session.
	DatagramsIn, DatagramsOut uint64
	// DroppedInbound: the receive queue was full. DroppedQueueFull: the
	// session's send queue was full. DroppedNoRoute: no such session.
	DroppedInbound, DroppedQueueFull, DroppedNoRoute uint64
}

// Stats returns a snapshot of the counters.
func (c *Central) Stats() CentralStats {
	c.mu.Lock()
	n := len(c.sessions)
	ended := make(map[string]uint64, len(c.ended))
	for k, v := range c.ended {
		ended[k] = v
	}
	c.mu.Unlock()
	return CentralStats{
		LinksAccepted:    c.accepted.Load(),
		LinksRefused:     c.refused.Load(),
		HandshakesFailed: c.failed.Load(),
		Sessions:         n,
		Ended:            ended,
		DatagramsIn:      c.in.Load(),
		DatagramsOut:     c.out.Load(),
		DroppedInbound:   c.dropInbound.Load(),
		DroppedQueueFull: c.dropFull.Load(),
		DroppedNoRoute:   c.noPeer.Load(),
	}
}

// Reason names why a BTP session ended, for counters and logs: "closed",
// "link_closed", "ack_timeout", "idle_timeout", or the protocol violation
// ("sequence", "ack", "window", "reassembly", "message_too_large",
// "segment_too_large", "malformed"), else "other".
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{btp.ErrAckTimeout, "ack_timeout"},
		{btp.ErrIdleTimeout, "idle_timeout"},
		{btp.ErrSequence, "sequence"},
		{btp.ErrAck, "ack"},
		{btp.ErrWindow, "window"},
		{btp.ErrReassembly, "reassembly"},
		{btp.ErrMessageTooLarge, "message_too_large"},
		{btp.ErrSegmentTooLarge, "segment_too_large"},
		{btp.ErrMalformed, "malformed"},
		{btp.ErrLinkClosed, "link_closed"},
		{btp.ErrClosed, "closed"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}
