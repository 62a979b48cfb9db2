// Package radio is a simulated link layer for tests and the testbed. A
// Network hands out net.PacketConns bound to string addresses ("gw:5684",
// "mote-17:49152"); datagrams written to one are delivered to the receive
// queue of another, so the real DTLS and CoAP stacks run without sockets.
//
// The link model is deliberately simple: a seeded RNG decides per-datagram
// loss and jitter, every datagram gets a fixed latency plus jitter, datagrams
// above the MTU are dropped (no fragmentation), and receive queues are
// bounded (drop when full). Every drop is counted by reason in Stats.
// Delivery with latency runs on one scheduler goroutine per Network (a timer
// heap), never a goroutine per datagram.
//
// For a given seed and the same sequence of writes, the drop and delay
// decisions are the same; the interleaving of concurrent writers is up to the
// Go scheduler.
package radio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Network without options.
const (
	// DefaultMTU is the IPv6 minimum link MTU (RFC 8200 §5), which a Thread
	// link offers to IPv6 through 6LoWPAN.
	DefaultMTU = 1280
	// DefaultQueueLen is the receive queue length of each endpoint.
	DefaultQueueLen = 256
)

// Addr is a link address on a Network. It implements net.Addr.
type Addr string

// Network is "radio".
func (a Addr) Network() string { return "radio" }

// String is the address itself.
func (a Addr) String() string { return string(a) }

// maxAddrLen bounds link addresses; they are map keys and log fields.
const maxAddrLen = 255

type config struct {
	seed     uint64
	loss     float64
	latency  time.Duration
	jitter   time.Duration
	mtu      int
	queueLen int
}

// Option configures a Network. Options validate their arguments; NewNetwork
// returns the first error.
type Option func(*config) error

// WithSeed seeds the RNG that decides loss and jitter (default 1).
func WithSeed(seed uint64) Option {
	return func(c *config) error {
		c.seed = seed
		return nil
	}
}

// WithLoss drops each datagram independently with probability p, 0 <= p <= 1.
func WithLoss(p float64) Option {
	return func(c *config) error {
		if math.IsNaN(p) || p < 0 || p > 1 {
			return fmt.Errorf("%w: loss probability %v not in [0,1]", ErrInvalidOption, p)
		}
		c.loss = p
		return nil
	}
}

// WithLatency delays each datagram by fixed plus a uniformly random jitter in
// [0, jitter). Jitter can reorder datagrams, as on a real mesh.
func WithLatency(fixed, jitter time.Duration) Option {
	return func(c *config) error {
		if fixed < 0 || jitter < 0 {
			return fmt.Errorf("%w: negative latency %v or jitter %v", ErrInvalidOption, fixed, jitter)
		}
		c.latency, c.jitter = fixed, jitter
		return nil
	}
}

// WithMTU sets the largest datagram the link carries (default DefaultMTU).
// Larger datagrams are dropped and counted, as on a link without
// fragmentation support.
func WithMTU(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: MTU %d < 1", ErrInvalidOption, n)
		}
		c.mtu = n
		return nil
	}
}

// WithQueueLen sets the receive queue length of each endpoint (default
// DefaultQueueLen). Datagrams arriving at a full queue are dropped.
func WithQueueLen(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: queue length %d < 1", ErrInvalidOption, n)
		}
		c.queueLen = n
		return nil
	}
}

// Stats counts datagrams since the Network was created.
type Stats struct {
	// Sent is every datagram handed to WriteTo.
	Sent uint64
	// Delivered is every datagram placed in a receive queue.
	Delivered uint64
	// DroppedLoss were lost by the loss model.
	DroppedLoss uint64
	// DroppedMTU were larger than the MTU.
	DroppedMTU uint64
	// DroppedQueueFull found the receive queue full.
	DroppedQueueFull uint64
	// DroppedNoRoute had no endpoint at the destination address (or it
	// closed before delivery).
	DroppedNoRoute uint64
}

// Dropped is the sum of all drop reasons.
func (s Stats) Dropped() uint64 {
	return s.DroppedLoss + s.DroppedMTU + s.DroppedQueueFull + s.DroppedNoRoute
}

type counters struct {
	sent, delivered, loss, mtu, queueFull, noRoute atomic.Uint64
}

// Network is a simulated link shared by all endpoints created with Listen.
// It is safe for concurrent use.
type Network struct {
	cfg   config
	stats counters
	sched *scheduler // nil when there is no latency

	mu        sync.Mutex // guards endpoints, rng, closed
	endpoints map[string]*endpoint
	rng       *rand.Rand
	closed    bool
}

// NewNetwork returns a Network configured by opts. Close it to stop its
// scheduler and close all endpoints.
func NewNetwork(opts ...Option) (*Network, error) {
	cfg := config{seed: 1, mtu: DefaultMTU, queueLen: DefaultQueueLen}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	n := &Network{
		cfg:       cfg,
		endpoints: make(map[string]*endpoint),
		rng:       rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
	}
	if cfg.latency > 0 || cfg.jitter > 0 {
		n.sched = newScheduler()
		go n.sched.run()
	}
	return n, nil
}

// Stats returns a snapshot of the counters.
func (n *Network) Stats() Stats {
	return Stats{
		Sent:             n.stats.sent.Load(),
		Delivered:        n.stats.delivered.Load(),
		DroppedLoss:      n.stats.loss.Load(),
		DroppedMTU:       n.stats.mtu.Load(),
		DroppedQueueFull: n.stats.queueFull.Load(),
		DroppedNoRoute:   n.stats.noRoute.Load(),
	}
}

// Listen creates an endpoint at addr. The address must be unique on the
// Network until the endpoint is closed.
func (n *Network) Listen(addr string) (net.PacketConn, error) {
	if addr == "" || len(addr) > maxAddrLen {
		return nil, fmt.Errorf("%w: %q", ErrInvalidAddr, addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrNetworkClosed
	}
	if _, dup := n.endpoints[addr]; dup {
		return nil, fmt.Errorf("%w: %s", ErrAddrInUse, addr)
	}
	e := newEndpoint(n, Addr(addr), n.cfg.queueLen)
	n.endpoints[addr] = e
	return e, nil
}

// Close closes every endpoint and stops delivery. Datagrams still in flight
// are discarded.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	eps := make([]*endpoint, 0, len(n.endpoints))
	for _, e := range n.endpoints {
		eps = append(eps, e)
	}
	n.mu.Unlock()
	for _, e := range eps {
		e.shutdown()
	}
	if n.sched != nil {
		n.sched.close()
	}
	return nil
}

// remove forgets e if it is still the endpoint registered at its address.
func (n *Network) remove(e *endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.endpoints[string(e.addr)] == e {
		delete(n.endpoints, string(e.addr))
	}
}

// transmit applies the link model to one datagram from src to dst.
func (n *Network) transmit(src Addr, dst string, b []byte) {
	n.stats.sent.Add(1)
	if len(b) > n.cfg.mtu {
		n.stats.mtu.Add(1)
		return
	}
	n.mu.Lock()
	to := n.endpoints[dst]
	lost := n.cfg.loss > 0 && n.rng.Float64() < n.cfg.loss
	delay := n.cfg.latency
	if !lost && n.cfg.jitter > 0 {
		delay += time.Duration(n.rng.Int64N(int64(n.cfg.jitter)))
	}
	n.mu.Unlock()
	if lost {
		n.stats.loss.Add(1)
		return
	}
	if to == nil {
		n.stats.noRoute.Add(1)
		return
	}
	d := datagram{from: src, data: append([]byte(nil), b...)}
	if delay <= 0 || n.sched == nil {
		n.deliver(to, d)
		return
	}
	if !n.sched.add(time.Now().Add(delay), to, d) {
		n.stats.noRoute.Add(1)
	}
}

// deliver places d in the receive queue of to. Delivered is counted before
// the datagram becomes readable, so a reader always sees it counted.
func (n *Network) deliver(to *endpoint, d datagram) {
	n.stats.delivered.Add(1)
	switch to.enqueue(d) {
	case enqueued:
	case queueFull:
		n.stats.delivered.Add(^uint64(0))
		n.stats.queueFull.Add(1)
	default:
		n.stats.delivered.Add(^uint64(0))
		n.stats.noRoute.Add(1)
	}
}
