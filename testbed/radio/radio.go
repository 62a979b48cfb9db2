// Package radio is a simulated link layer for tests and the testbed. A
// Network hands out net.PacketConns bound to string addresses ("gw:5684",
// "mote-17:49152"); datagrams written to one are delivered to the receive
// queue of another, so the real DTLS and CoAP stacks run without sockets.
//
// The link model is deliberately simple. Datagrams above the MTU are dropped.
// A datagram within the MTU travels as one or more link frames (see
// WithFragmentation) over one or more radio hops (see WithHops); a seeded RNG
// loses each frame on each hop independently, and a datagram arrives only if
// all of its frames survive every hop. Each hop adds a fixed latency, a
// random jitter and, optionally, an air time per frame (WithFrameTime).
// Receive queues are bounded (drop when full). Every drop is counted by
// reason in Stats. Delivery with latency runs on one scheduler goroutine per
// Network (a timer heap), never a goroutine per datagram.
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
	// MaxHops is the largest hop count WithHops accepts.
	MaxHops = 32
	// MinFragmentPayload and MaxFragmentPayload bound the per-frame payload
	// WithFragmentation accepts: RFC 4944 §5.3 counts fragment offsets in
	// 8-octet units, and an IEEE 802.15.4 frame is at most 127 octets
	// (aMaxPHYPacketSize).
	MinFragmentPayload = 8
	MaxFragmentPayload = 127
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
	seed      uint64
	loss      float64
	latency   time.Duration
	jitter    time.Duration
	mtu       int
	queueLen  int
	hops      int
	fragment  int // payload bytes per link frame; 0 = no fragmentation
	frameTime time.Duration
}

// frames is the number of link frames a datagram of size bytes travels as.
func (c *config) frames(size int) int {
	if c.fragment == 0 || size <= c.fragment {
		return 1
	}
	return 1 + (size-1)/c.fragment
}

// delayed reports whether any datagram can be delayed, so the Network needs
// a scheduler.
func (c *config) delayed() bool {
	return c.latency > 0 || c.jitter > 0 || c.frameTime > 0
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

// WithLoss loses each link frame on each hop independently with probability
// p, 0 <= p <= 1. With the defaults (one hop, no fragmentation) a datagram is
// one frame over one hop, so p is the datagram loss rate; in general a
// datagram of f frames over h hops arrives with probability (1-p)^(f*h).
// Read p as the residual loss after 802.15.4 MAC retransmissions, which are
// not modelled.
func WithLoss(p float64) Option {
	return func(c *config) error {
		if math.IsNaN(p) || p < 0 || p > 1 {
			return fmt.Errorf("%w: loss probability %v not in [0,1]", ErrInvalidOption, p)
		}
		c.loss = p
		return nil
	}
}

// WithLatency delays each datagram, on each hop, by fixed plus a uniformly
// random jitter in [0, jitter) drawn independently per hop. Jitter can
// reorder datagrams, as on a real mesh.
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
// Larger datagrams are dropped and counted. The MTU is what the link offers
// to IPv6; WithFragmentation models how a datagram within it is carried.
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

// WithHops sets how many radio hops, 1 to MaxHops (default 1), a datagram
// crosses to reach its destination. Loss applies independently to every
// frame on every hop, and latency (fixed, jitter and frame time) accrues per
// hop, as on a Thread mesh where routers forward hop by hop.
func WithHops(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxHops {
			return fmt.Errorf("%w: hops %d not in [1,%d]", ErrInvalidOption, n, MaxHops)
		}
		c.hops = n
		return nil
	}
}

// WithFragmentation approximates 6LoWPAN fragmentation (RFC 4944 §5.3) of
// IPv6 datagrams into IEEE 802.15.4 frames. payload is the number of datagram
// bytes one link frame carries, MinFragmentPayload to MaxFragmentPayload, or
// 0 to turn fragmentation off (the default): a datagram of L bytes travels
// as ceil(L/payload) frames when L > payload, and as one frame otherwise
// (including L = 0). It is delivered only if every frame survives every hop,
// so with loss p over h hops it arrives with probability (1-p)^(frames*h); a
// lost fragment loses the whole datagram, as reassembly fails (there is no
// fragment recovery).
//
// The approximation: payload is one budget for all frames. The 127-octet
// frame minus MAC header, security and FCS, the FRAG1 (4-octet) and FRAGN
// (5-octet) headers of RFC 4944, any mesh header, and the IPv6/UDP headers as
// compressed by RFC 6282 (IPHC/NHC) are folded into it: header compression
// is ignored, the first fragment's larger share of headers is not
// distinguished from later fragments', and fragment sizes are not rounded to
// the 8-octet multiples RFC 4944 requires. Thread frames with short addresses
// and MAC security leave roughly 80 to 100 bytes. The MTU check (WithMTU)
// happens first: fragmentation is below it.
func WithFragmentation(payload int) Option {
	return func(c *config) error {
		if payload != 0 && (payload < MinFragmentPayload || payload > MaxFragmentPayload) {
			return fmt.Errorf("%w: fragment payload %d not 0 or in [%d,%d]",
				ErrInvalidOption, payload, MinFragmentPayload, MaxFragmentPayload)
		}
		c.fragment = payload
		return nil
	}
}

// WithFrameTime adds d of air time per link frame per hop to each datagram's
// latency (default 0), so larger datagrams and longer routes are slower. The
// hops are store-and-forward: a datagram of f frames over h hops adds f*h*d.
// At the 802.15.4 2.4 GHz rate of 250 kbit/s, a full 127-octet frame with its
// PHY preamble and header is about 4.3 ms; CSMA backoff and acknowledgements
// are not modelled, and every frame costs d whatever its length.
func WithFrameTime(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: negative frame time %v", ErrInvalidOption, d)
		}
		c.frameTime = d
		return nil
	}
}

// Stats counts datagrams and link frames since the Network was created.
// Once every datagram in flight has been delivered or dropped,
// Sent == Delivered + Dropped().
type Stats struct {
	// Sent is every datagram handed to WriteTo.
	Sent uint64
	// Delivered is every datagram placed in a receive queue.
	Delivered uint64
	// Frames is every link frame sent, counting hops: each datagram within
	// the MTU adds frames*hops, whether it arrives or not and whether or not
	// its destination exists. It is the offered load: frames that a real
	// mesh would stop forwarding after a loss are still counted.
	Frames uint64
	// DroppedLoss were datagrams sent as a single link frame that the loss
	// model lost on one of their hops.
	DroppedLoss uint64
	// DroppedFragment were datagrams sent as more than one link frame
	// (fragmented) that the loss model lost because at least one of their
	// frames was lost on one of their hops.
	DroppedFragment uint64
	// DroppedMTU were larger than the MTU.
	DroppedMTU uint64
	// DroppedQueueFull found the receive queue full.
	DroppedQueueFull uint64
	// DroppedNoRoute had no endpoint at the destination address (or it
	// closed before delivery).
	DroppedNoRoute uint64
}

// Dropped is the sum of all drop reasons, in datagrams.
func (s Stats) Dropped() uint64 {
	return s.DroppedLoss + s.DroppedFragment + s.DroppedMTU + s.DroppedQueueFull + s.DroppedNoRoute
}

type counters struct {
	sent, delivered, frames                 atomic.Uint64
	loss, fragment, mtu, queueFull, noRoute atomic.Uint64
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
	cfg := config{seed: 1, mtu: DefaultMTU, queueLen: DefaultQueueLen, hops: 1}
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
	if cfg.delayed() {
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
		Frames:           n.stats.frames.Load(),
		DroppedLoss:      n.stats.loss.Load(),
		DroppedFragment:  n.stats.fragment.Load(),
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
	frames := n.cfg.frames(len(b))
	n.stats.frames.Add(uint64(frames) * uint64(n.cfg.hops))
	n.mu.Lock()
	to := n.endpoints[dst]
	lost, delay := n.fate(frames)
	n.mu.Unlock()
	if lost {
		if frames > 1 {
			n.stats.fragment.Add(1)
		} else {
			n.stats.loss.Add(1)
		}
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

// fate decides, with n.mu held, whether a datagram of frames link frames is
// lost on its way and, if not, how long it takes. It draws from the RNG in a
// fixed order, one loss draw and then one jitter draw per hop of a datagram
// that survives, so a seed and a sequence of writes give the same decisions.
func (n *Network) fate(frames int) (lost bool, delay time.Duration) {
	c := &n.cfg
	if c.loss > 0 && n.rng.Float64() < lossProb(c.loss, frames*c.hops) {
		return true, 0
	}
	delay = satMul(satAdd(c.latency, satMul(c.frameTime, frames)), c.hops)
	if c.jitter > 0 {
		for range c.hops {
			delay = satAdd(delay, time.Duration(n.rng.Int64N(int64(c.jitter))))
		}
	}
	return false, delay
}

// lossProb is the probability that at least one of k frames, each lost
// independently with probability p, is lost: 1-(1-p)^k, computed without
// cancellation for small p. One uniform draw against it is distributed as k
// independent per-frame draws. For k = 1 it is p exactly.
func lossProb(p float64, k int) float64 {
	if k == 1 {
		return p
	}
	return -math.Expm1(float64(k) * math.Log1p(-p))
}

// satAdd and satMul combine non-negative durations, saturating instead of
// overflowing on absurd configurations.
func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(d time.Duration, k int) time.Duration {
	if d == 0 || k == 0 {
		return 0
	}
	if d > math.MaxInt64/time.Duration(k) {
		return math.MaxInt64
	}
	return d * time.Duration(k)
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
