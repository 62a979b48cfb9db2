// Package sim simulates BLE GATT links between a gateway (the central)
// and pledges (peripherals advertising the onboarding service), for tests
// and the testbed. It implements ble.LinkSource for the gateway's Central
// and gives pledges a net.PacketConn over a simulated link, so the real
// BTP, DTLS and CoAP stacks run without a radio
// (../../shared/spec/thread-ble.md §4.7: abstract the link, inject loss and
// latency there).
//
// The link model follows ATT: a write request or an indication is
// confirmed by the peer, one at a time per direction, so values are never
// lost or reordered on a live link. Loss therefore takes the two forms it
// takes on air: delay (every operation costs a one-way latency plus
// jitter to deliver and again to confirm) and connection drops (each
// operation ends the link with probability WithDropRate, as a supervision
// timeout would). Each link's ATT_MTU is drawn from WithATTMTU's range.
// A seeded RNG makes MTUs, delays and drops the same for the same sequence
// of operations; the interleaving of concurrent links is up to the Go
// scheduler.
package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/btp"
)

// Defaults of a Network without options.
const (
	DefaultATTMTU      = 247
	DefaultCentralName = "gateway"
	// DefaultBacklog bounds pledges advertising and not yet connected.
	DefaultBacklog = 1024
	// DefaultConnectTimeout bounds Pledge: advertising until the gateway
	// connects, plus the BTP handshake.
	DefaultConnectTimeout = 30 * time.Second
	// rxQueue is how many confirmed values a link end buffers before its
	// reader takes them; the BTP window keeps far fewer in flight.
	rxQueue = 16
)

// Option configures a Network; NewNetwork returns the first error.
type Option func(*config) error

type config struct {
	seed            uint64
	mtuMin, mtuMax  int
	latency, jitter time.Duration
	drop            float64
	backlog         int
	central         string
	connectTimeout  time.Duration
}

// WithSeed seeds the RNG of MTUs, delays and drops (default 1).
func WithSeed(seed uint64) Option {
	return func(c *config) error { c.seed = seed; return nil }
}

// WithATTMTU draws each link's ATT_MTU uniformly from [lo, hi], within
// 23..517 (Bluetooth Core Vol 3 Part F §3.2.8; default 247, the most
// LE Data Length Extension carries in one PDU).
func WithATTMTU(lo, hi int) Option {
	return func(c *config) error {
		if lo < btp.MinATTMTU || hi > 517 || lo > hi {
			return fmt.Errorf("%w: ATT_MTU range [%d,%d] not within [23,517]", ErrInvalidOption, lo, hi)
		}
		c.mtuMin, c.mtuMax = lo, hi
		return nil
	}
}

// WithLatency delays each delivery and each confirmation by fixed plus a
// uniform jitter in [0, jitter). A connection interval of 30 ms gives
// about fixed = 30 ms.
func WithLatency(fixed, jitter time.Duration) Option {
	return func(c *config) error {
		if fixed < 0 || jitter < 0 {
			return fmt.Errorf("%w: negative latency", ErrInvalidOption)
		}
		c.latency, c.jitter = fixed, jitter
		return nil
	}
}

// WithDropRate ends the link on each GATT operation with probability p,
// 0 <= p <= 1: BLE's loss, since ATT itself never loses a value.
func WithDropRate(p float64) Option {
	return func(c *config) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("%w: drop rate %v", ErrInvalidOption, p)
		}
		c.drop = p
		return nil
	}
}

// WithBacklog bounds pledges advertising and not yet connected (default
// DefaultBacklog); Pledge waits for room.
func WithBacklog(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("%w: backlog %d", ErrInvalidOption, n)
		}
		c.backlog = n
		return nil
	}
}

// WithCentralName sets the gateway's simulated BLE address (default
// DefaultCentralName); give the Central the same with ble.WithName.
func WithCentralName(name string) Option {
	return func(c *config) error {
		if name == "" {
			return fmt.Errorf("%w: empty central name", ErrInvalidOption)
		}
		c.central = name
		return nil
	}
}

// WithConnectTimeout bounds each Listen call (default
// DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: connect timeout %v", ErrInvalidOption, d)
		}
		c.connectTimeout = d
		return nil
	}
}

// Stats counts what happened on a Network.
type Stats struct {
	// Links counts connections made; Dropped those ended by WithDropRate.
	Links, Dropped uint64
	// Values counts values delivered (writes and indications).
	Values uint64
	// Open is the number of live links.
	Open int
}

// Network is the simulated air. It is safe for concurrent use.
type Network struct {
	cfg     config
	adverts chan *advert
	done    chan struct{}

	mu     sync.Mutex // guards rng, closed, live
	rng    *rand.Rand
	closed bool
	live   map[*link]struct{}

	links, dropped, values atomic.Uint64
}

var _ ble.LinkSource = (*Network)(nil)

// NewNetwork returns a Network configured by opts.
func NewNetwork(opts ...Option) (*Network, error) {
	cfg := config{seed: 1, mtuMin: DefaultATTMTU, mtuMax: DefaultATTMTU, backlog: DefaultBacklog,
		central: DefaultCentralName, connectTimeout: DefaultConnectTimeout}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Network{
		cfg:     cfg,
		adverts: make(chan *advert, cfg.backlog),
		done:    make(chan struct{}),
		rng:     rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
		live:    make(map[*link]struct{}),
	}, nil
}

// CentralAddr is the gateway's address as pledges see it: what a pledge
// dials (mote.Pledge.Onboard's addr).
func (n *Network) CentralAddr() net.Addr { return ble.Addr{Device: n.cfg.central} }

// Stats returns a snapshot of the counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	open := len(n.live)
	n.mu.Unlock()
	return Stats{Links: n.links.Load(), Dropped: n.dropped.Load(), Values: n.values.Load(), Open: open}
}

// Close ends every link and unblocks Accept and Advertise.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	live := make([]*link, 0, len(n.live))
	for l := range n.live {
		live = append(live, l)
	}
	n.mu.Unlock()
	for _, l := range live {
		l.kill(ErrClosed)
	}
	return nil
}

// advert is a pledge advertising ServiceUUID, waiting for a connection.
type advert struct {
	name  string
	reply chan *peripheralEnd
	gone  atomic.Bool
}

// Advertise makes a pledge called name connectable and returns its end of
// the link once the gateway connected (Accept), or ctx's error.
func (n *Network) Advertise(ctx context.Context, name string) (btp.PeripheralLink, error) {
	a := &advert{name: name, reply: make(chan *peripheralEnd, 1)}
	select {
	case n.adverts <- a:
	case <-n.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case p := <-a.reply:
		return p, nil
	case <-n.done:
		return nil, ErrClosed
	case <-ctx.Done():
		a.gone.Store(true)
		select {
		case p := <-a.reply: // connected just now: let go of it
			_ = p.Close()
		default:
		}
		return nil, ctx.Err()
	}
}

// Accept connects to the next advertising pledge, as the gateway's
// scanner does, and returns the central's end of the link.
func (n *Network) Accept(ctx context.Context) (btp.CentralLink, error) {
	for {
		select {
		case a := <-n.adverts:
			if a.gone.Load() {
				continue
			}
			l, err := n.connect(a.name)
			if err != nil {
				return nil, err
			}
			a.reply <- &peripheralEnd{l}
			return &centralEnd{l}, nil
		case <-n.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Pledge advertises name, waits for the gateway and accepts the BTP
// handshake: the pledge's side of one BLE onboarding link.
func (n *Network) Pledge(ctx context.Context, name string, opts ...ble.Option) (*ble.PeripheralConn, error) {
	pl, err := n.Advertise(ctx, name)
	if err != nil {
		return nil, err
	}
	return ble.NewPeripheralConn(ctx, pl, append([]ble.Option{ble.WithName(name)}, opts...)...)
}

// Listen returns a function for testbed/mote's Config.Listen: each call
// opens a new link for pledge name (Pledge, bounded by
// WithConnectTimeout), so each DTLS association gets its own.
func (n *Network) Listen(name string, opts ...ble.Option) func() (net.PacketConn, error) {
	return func() (net.PacketConn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.connectTimeout)
		defer cancel()
		pc, err := n.Pledge(ctx, name, opts...)
		if err != nil {
			return nil, err
		}
		return pc, nil
	}
}

func (n *Network) connect(pledge string) (*link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	mtu := n.cfg.mtuMin
	if n.cfg.mtuMax > n.cfg.mtuMin {
		mtu += n.rng.IntN(n.cfg.mtuMax - n.cfg.mtuMin + 1)
	}
	l := &link{
		n:          n,
		mtu:        mtu,
		pledge:     pledge,
		c2p:        make(chan []byte, rxQueue),
		p2c:        make(chan []byte, rxQueue),
		subscribed: make(chan struct{}),
		dead:       make(chan struct{}),
	}
	n.live[l] = struct{}{}
	n.links.Add(1)
	return l, nil
}

// delay is one simulated trip over the air.
func (n *Network) delay() time.Duration {
	if n.cfg.latency == 0 && n.cfg.jitter == 0 {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.cfg.latency
	if n.cfg.jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.cfg.jitter)))
	}
	return d
}

// lose reports whether this operation drops the connection.
func (n *Network) lose() bool {
	if n.cfg.drop == 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rng.Float64() < n.cfg.drop
}

// link is one simulated GATT connection.
type link struct {
	n          *Network
	mtu        int
	pledge     string
	c2p, p2c   chan []byte
	subscribed chan struct{}
	subOnce    sync.Once
	dead       chan struct{}
	deadOnce   sync.Once
	cause      error
}

func (l *link) kill(cause error) {
	l.deadOnce.Do(func() {
		l.cause = cause
		close(l.dead)
		l.n.mu.Lock()
		delete(l.n.live, l)
		l.n.mu.Unlock()
	})
}

func (l *link) closedErr() error {
	<-l.dead
	return fmt.Errorf("%w: %w", btp.ErrLinkClosed, l.cause)
}

// send is one confirmed ATT operation: delivery, then confirmation.
func (l *link) send(ctx context.Context, out chan<- []byte, v []byte) error {
	select {
	case <-l.dead:
		return l.closedErr()
	default:
	}
	if len(v) > l.mtu-3 {
		return fmt.Errorf("%w: %d octets, ATT_MTU %d", ErrValueTooLong, len(v), l.mtu)
	}
	if l.n.lose() {
		l.n.dropped.Add(1)
		l.kill(ErrDropped)
		return l.closedErr()
	}
	if err := l.wait(ctx, l.n.delay()); err != nil {
		return err
	}
	select {
	case out <- append([]byte(nil), v...):
		l.n.values.Add(1)
	case <-l.dead:
		return l.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.wait(ctx, l.n.delay())
}

func (l *link) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.dead:
		return l.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receive prefers values already confirmed to the sender over the news
// that the link is gone: the peer's ATT layer had them.
func (l *link) receive(ctx context.Context, in <-chan []byte) ([]byte, error) {
	select {
	case v := <-in:
		return v, nil
	default:
	}
	select {
	case v := <-in:
		return v, nil
	case <-l.dead:
		return nil, l.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type centralEnd struct{ l *link }

func (c *centralEnd) Send(ctx context.Context, v []byte) error { return c.l.send(ctx, c.l.c2p, v) }
func (c *centralEnd) Receive(ctx context.Context) ([]byte, error) {
	return c.l.receive(ctx, c.l.p2c)
}
func (c *centralEnd) ATTMTU() int  { return c.l.mtu }
func (c *centralEnd) Peer() string { return c.l.pledge }
func (c *centralEnd) Close() error {
	c.l.kill(errCentralClosed)
	return nil
}

// Subscribe writes the CCCD: one confirmed operation.
func (c *centralEnd) Subscribe(ctx context.Context) error {
	if err := c.l.wait(ctx, c.l.n.delay()); err != nil {
		return err
	}
	c.l.subOnce.Do(func() { close(c.l.subscribed) })
	return c.l.wait(ctx, c.l.n.delay())
}

type peripheralEnd struct{ l *link }

func (p *peripheralEnd) Send(ctx context.Context, v []byte) error {
	select {
	case <-p.l.subscribed:
	default:
		return ErrNotSubscribed
	}
	return p.l.send(ctx, p.l.p2c, v)
}
func (p *peripheralEnd) Receive(ctx context.Context) ([]byte, error) {
	return p.l.receive(ctx, p.l.c2p)
}
func (p *peripheralEnd) ATTMTU() int  { return p.l.mtu }
func (p *peripheralEnd) Peer() string { return p.l.n.cfg.central }
func (p *peripheralEnd) Close() error {
	p.l.kill(errPeripheralClosed)
	return nil
}

func (p *peripheralEnd) WaitSubscribed(ctx context.Context) error {
	select {
	case <-p.l.subscribed:
		return nil
	case <-p.l.dead:
		return p.l.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}
