package btp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Conn is an established BTP session: a reliable, ordered, message-
// preserving connection over one GATT link. Messages of up to the
// configured maximum are segmented to the negotiated segment size and
// flow-controlled by the negotiated window.
//
// Two goroutines run each Conn: one sends (data segments, piggybacked or
// stand-alone acknowledgements, driven by the timers), one receives.
// Memory is bounded by the queue lengths and one reassembly buffer of at
// most the maximum message size.
//
// Liveness: every packet is acknowledged, stand-alone acknowledgements
// included, within the send-ack delay, so an idle session exchanges one
// acknowledgement per delay in alternating directions. That is the
// keep-alive: a peer that stops answering leaves a packet unacknowledged
// and the session fails with ErrAckTimeout. A session without message
// data for the idle timeout fails with ErrIdleTimeout.
type Conn struct {
	link   Link
	cfg    config
	params Params
	log    zerolog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	wake   chan struct{}
	slots  chan struct{} // one token per queued message to send
	rx     chan []byte   // reassembled messages
	done   chan struct{}
	txbuf  []byte // used by the send goroutine only

	mu       sync.Mutex
	s        *session
	txq      [][]byte
	ackDue   time.Time // when an owed acknowledgement must go; zero if none owed
	ackWait  time.Time // when the oldest unacknowledged packet was sent or progress last seen
	lastData time.Time
	timer    Timer
	timerDue time.Time // when timer fires
	err      error
	stats    Stats
}

// Stats counts a Conn's traffic.
type Stats struct {
	SegmentsSent, SegmentsReceived uint64
	// AcksSent counts stand-alone acknowledgements.
	AcksSent                       uint64
	MessagesSent, MessagesReceived uint64
	// DroppedReceived counts reassembled messages dropped because the
	// receive queue was full.
	DroppedReceived uint64
}

func newConn(link Link, cfg config, p Params, central bool) *Conn {
	ctx, cancel := context.WithCancelCause(context.Background())
	now := cfg.clock.Now()
	c := &Conn{
		link:     link,
		cfg:      cfg,
		params:   p,
		log:      cfg.log.With().Str("component", "btp").Str("peer", link.Peer()).Logger(),
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		slots:    make(chan struct{}, cfg.queueLen),
		rx:       make(chan []byte, cfg.queueLen),
		done:     make(chan struct{}),
		txbuf:    make([]byte, 0, p.SegmentSize),
		s:        newSession(central, p.Window, p.SegmentSize, cfg.maxMessage),
		lastData: now,
	}
	if central {
		c.ackDue = now.Add(cfg.sendAckDelay)
	} else {
		c.ackWait = now
	}
	c.log.Debug().Int("segment", p.SegmentSize).Int("window", p.Window).Bool("central", central).Msg("BTP session open")
	c.wg.Add(2)
	go c.sendLoop()
	go c.recvLoop()
	return c
}

// Params returns the negotiated parameters.
func (c *Conn) Params() Params { return c.params }

// Peer is the link's peer address.
func (c *Conn) Peer() string { return c.link.Peer() }

// MaxMessage is the largest message Send accepts.
func (c *Conn) MaxMessage() int { return c.cfg.maxMessage }

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Done is closed when the session has ended and its link is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the session ended (ErrClosed after Close), or nil while
// it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Send queues msg, waiting for room in the send queue until ctx is done.
// It returns once the message is queued, not when it is delivered. msg is
// copied.
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	if err := c.checkSize(msg); err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return c.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.enqueue(msg)
}

// TrySend queues msg if the send queue has room and returns ErrQueueFull
// otherwise. msg is copied.
func (c *Conn) TrySend(msg []byte) error {
	if err := c.checkSize(msg); err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return c.closedErr()
	default:
		return ErrQueueFull
	}
	return c.enqueue(msg)
}

func (c *Conn) checkSize(msg []byte) error {
	switch {
	case len(msg) == 0:
		return ErrEmptyMessage
	case len(msg) > c.cfg.maxMessage:
		return fmt.Errorf("%w: %d octets, limit %d", ErrMessageTooLarge, len(msg), c.cfg.maxMessage)
	}
	return nil
}

func (c *Conn) enqueue(msg []byte) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.closedErr()
	}
	c.txq = append(c.txq, append([]byte(nil), msg...))
	c.mu.Unlock()
	c.poke()
	return nil
}

// Receive returns the next message, waiting until one arrives, the
// session ends or ctx is done. Messages already reassembled are returned
// before the error that ended the session.
func (c *Conn) Receive(ctx context.Context) ([]byte, error) {
	select {
	case m := <-c.rx:
		return m, nil
	default:
	}
	select {
	case m := <-c.rx:
		return m, nil
	case <-c.done:
		select {
		case m := <-c.rx:
			return m, nil
		default:
			return nil, c.closedErr()
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends the session and closes the link. It waits for the Conn's
// goroutines and returns nil, or ErrClosed if already closed.
func (c *Conn) Close() error {
	first := c.fail(ErrClosed)
	c.wg.Wait()
	if !first {
		return ErrClosed
	}
	return nil
}

func (c *Conn) closedErr() error {
	if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// fail ends the session with err. It reports whether this call ended it.
func (c *Conn) fail(err error) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.err = err
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	// The link goes first: once Done is closed, so is the link.
	_ = c.link.Close()
	c.cancel(err)
	close(c.done)
	if !errors.Is(err, ErrClosed) {
		c.log.Debug().Err(err).Msg("BTP session failed")
	}
	return true
}

func (c *Conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendLoop sends whatever the session allows, then sleeps until a message
// is queued, a packet arrives or a timer is due.
func (c *Conn) sendLoop() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		now := c.cfg.clock.Now()
		if err := c.expired(now); err != nil {
			c.mu.Unlock()
			c.fail(err)
			return
		}
		seg := c.next(now)
		if seg == nil {
			c.arm(now)
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.ctx.Done():
				return
			}
			continue
		}
		c.mu.Unlock()
		if err := c.link.Send(c.ctx, seg); err != nil {
			c.fail(linkErr(c.ctx, err))
			return
		}
	}
}

// expired checks the ack and idle timers (c.mu held).
func (c *Conn) expired(now time.Time) error {
	if c.s.txUnacked > 0 && !now.Before(c.ackWait.Add(c.cfg.ackTimeout)) {
		return fmt.Errorf("%w: %d packets unacknowledged for %v", ErrAckTimeout, c.s.txUnacked, c.cfg.ackTimeout)
	}
	if c.cfg.idleTimeout > 0 && !now.Before(c.lastData.Add(c.cfg.idleTimeout)) {
		return fmt.Errorf("%w: no message data for %v", ErrIdleTimeout, c.cfg.idleTimeout)
	}
	return nil
}

// next returns the packet to send now, or nil (c.mu held). Data goes first
// and carries any owed acknowledgement; a stand-alone acknowledgement goes
// when the local window is nearly exhausted (CHIP
// BLE_CONFIG_IMMEDIATE_ACK_WINDOW_THRESHOLD 1) or the send-ack delay has
// passed.
func (c *Conn) next(now time.Time) []byte {
	if !c.s.sending() && len(c.txq) > 0 {
		c.s.start(c.txq[0])
		c.txq[0] = nil
		c.txq = c.txq[1:]
		<-c.slots
	}
	wasIdle := c.s.txUnacked == 0
	var b []byte
	switch {
	case c.s.canSendData():
		var acked, done bool
		b, acked, done = c.s.nextData(c.txbuf[:0])
		if acked {
			c.ackDue = time.Time{}
		}
		if done {
			c.stats.MessagesSent++
		}
		c.lastData = now
	case c.s.owesAck() && c.s.remoteWindow() >= 1 && (c.s.localWindow() <= 1 || !now.Before(c.ackDue)):
		b = c.s.standaloneAck(c.txbuf[:0])
		c.ackDue = time.Time{}
		c.stats.AcksSent++
	default:
		return nil
	}
	if wasIdle {
		c.ackWait = now
	}
	c.stats.SegmentsSent++
	return b
}

// arm sets the timer for the earliest deadline (c.mu held). An owed
// acknowledgement counts only while the peer's window has room for it;
// otherwise the peer's next packet wakes the loop. A stale firing only
// wakes the send loop, which rechecks the clock.
func (c *Conn) arm(now time.Time) {
	var due time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if c.s.owesAck() && c.s.remoteWindow() >= 1 {
		earliest(c.ackDue)
	}
	if c.s.txUnacked > 0 {
		earliest(c.ackWait.Add(c.cfg.ackTimeout))
	}
	if c.cfg.idleTimeout > 0 {
		earliest(c.lastData.Add(c.cfg.idleTimeout))
	}
	if c.timer != nil && due.Equal(c.timerDue) {
		return // already armed for it
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if due.IsZero() {
		return
	}
	c.timerDue = due
	c.timer = c.cfg.clock.AfterFunc(max(due.Sub(now), 0), func() {
		c.mu.Lock()
		if c.timerDue.Equal(due) {
			c.timer = nil // fired: the next arm must set a new one
		}
		c.mu.Unlock()
		c.poke()
	})
}

func (c *Conn) recvLoop() {
	defer c.wg.Done()
	for {
		b, err := c.link.Receive(c.ctx)
		if err != nil {
			c.fail(linkErr(c.ctx, err))
			return
		}
		if err := c.handle(b); err != nil {
			c.fail(err)
			return
		}
		c.poke()
	}
}

func (c *Conn) handle(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil
	}
	now := c.cfg.clock.Now()
	owed := c.s.owesAck()
	r, err := c.s.receive(b)
	if err != nil {
		return err
	}
	c.stats.SegmentsReceived++
	if r.acked {
		// Progress restarts the ack timer (CHIP RestartAckReceivedTimer).
		c.ackWait = now
	}
	if !owed && c.s.owesAck() {
		c.ackDue = now.Add(c.cfg.sendAckDelay)
	}
	if r.data {
		c.lastData = now
	}
	if r.msg != nil {
		select {
		case c.rx <- r.msg:
			c.stats.MessagesReceived++
		default:
			c.stats.DroppedReceived++
		}
	}
	return nil
}

// linkErr describes a link failure: ErrLinkClosed if the link says so or
// the Conn is ending anyway.
func linkErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	if errors.Is(err, ErrLinkClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrLinkClosed, err)
}
