package joinproxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Stateful is a stateful constrained join proxy: a UDP circuit proxy that
// relays each pledge's datagrams, untouched, between the pledge-facing
// links and the registrar's CoAPS port. Per pledge tuple it keeps one
// circuit
//
//	(IP_P:p_P, IP_Jl:p_Jl) <===> (IP_Jr:p_Jr, IP_R:p_R)  (Exp-timer)
//
// whose registrar-facing socket (IP_Jr:p_Jr) is its own, so the registrar
// tells pledges apart by address as it would direct DTLS clients. A circuit
// ends DefaultStateTimeout after the last datagram in either direction.
// Circuits are bounded per pledge address and per link (WithLimits);
// beyond the bounds a new pledge tuple is refused and counted. The draft's
// ICMP "administratively prohibited" answer and the mapping of ICMP errors
// back to pledges are not sent: a net.PacketConn carries no ICMP.
//
// draft-ietf-anima-constrained-join-proxy §"Stateful Join Proxy".
type Stateful struct {
	registrar net.Addr
	regKey    string
	listen    func() (net.PacketConn, error)
	cfg       config
	log       zerolog.Logger
	pktLog    zerolog.Logger
	ctr       *counters
	run       runner

	mu        sync.Mutex
	stopped   bool
	circuits  map[string]*circuit
	perPledge map[string]int // by link and pledgeHost
	perLink   []int
	relays    sync.WaitGroup
}

// circuit is the state of one pledge tuple.
type circuit struct {
	key, hostKey string
	link         int
	pledge       net.Addr
	up           net.PacketConn // IP_Jr:p_Jr, this circuit's alone
	last         atomic.Int64   // UnixNano of the last datagram either way
}

// NewStateful returns a stateful join proxy that relays to the registrar's
// CoAPS address. listen opens a registrar-facing socket with a fresh source
// port for each new circuit (for UDP: net.ListenPacket("udp", ":0") on the
// routable side); the proxy owns and closes what it returns. Options:
// WithLogger, WithMetrics, WithClock, WithMaxDatagram, WithStateTimeout,
// WithLimits.
func NewStateful(registrar net.Addr, listen func() (net.PacketConn, error), opts ...Option) (*Stateful, error) {
	if registrar == nil || listen == nil {
		return nil, invalid("NewStateful needs a registrar address and a listen function")
	}
	cfg, err := newConfig(modeStateful, opts)
	if err != nil {
		return nil, err
	}
	p := &Stateful{
		registrar: registrar,
		regKey:    registrar.String(),
		listen:    listen,
		cfg:       cfg,
		log:       cfg.log,
		pktLog:    sampled(cfg.log),
		circuits:  make(map[string]*circuit),
		perPledge: make(map[string]int),
	}
	if p.ctr, err = newCounters(modeStateful, cfg.reg, p.active, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// Serve relays between the pledge-facing links (one per interface, at the
// join port; the link index is the interface in the per-interface limit)
// and the registrar until ctx is done or Close is called, then closes the
// links and every circuit and returns nil. A read error on a link ends
// Serve with that error. Serve may be called once. It owns the links.
func (p *Stateful) Serve(ctx context.Context, links ...net.PacketConn) error {
	if err := checkLinks(links); err != nil {
		closeAll(links...)
		return err
	}
	run, cancel, err := p.run.begin(ctx)
	if err != nil {
		closeAll(links...)
		return err
	}
	defer cancel()
	p.mu.Lock()
	p.perLink = make([]int, len(links))
	p.mu.Unlock()

	g, gctx := errgroup.WithContext(run)
	g.Go(func() error {
		<-gctx.Done()
		closeAll(links...)
		p.shutdown()
		return nil
	})
	for i, l := range links {
		g.Go(func() error { return p.readLink(gctx, i, l) })
	}
	g.Go(func() error {
		p.sweep(gctx)
		return nil
	})
	p.log.Info().Stringer("registrar", p.registrar).Int("links", len(links)).Msg("stateful join proxy serving")
	err = g.Wait()
	p.relays.Wait()
	return err
}

// Close stops Serve. It does not wait for Serve to return.
func (p *Stateful) Close() error {
	p.run.close()
	return nil
}

// Stats returns the proxy's counters; Active is the number of circuits.
func (p *Stateful) Stats() Stats { return p.ctr.snapshot() }

func (p *Stateful) active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.circuits)
}

// readLink relays datagrams from pledges on link i to the registrar.
func (p *Stateful) readLink(ctx context.Context, i int, link net.PacketConn) error {
	buf := make([]byte, p.cfg.maxDatagram+1)
	for {
		n, from, err := link.ReadFrom(buf)
		if err != nil {
			if readEnded(ctx) {
				return nil
			}
			return fmt.Errorf("joinproxy: link %d: read: %w", i, err)
		}
		if n > p.cfg.maxDatagram {
			p.ctr.drop(dropTooBig)
			continue
		}
		if from == nil {
			continue
		}
		c := p.circuitFor(i, link, from)
		if c == nil {
			continue
		}
		if _, err := c.up.WriteTo(buf[:n], p.registrar); err != nil {
			p.ctr.drop(dropWrite)
			p.pktLog.Debug().Err(err).Stringer("pledge", from).Msg("relay to registrar")
			continue
		}
		c.last.Store(p.cfg.now().UnixNano())
		p.ctr.up.Add(1)
	}
}

// circuitFor returns the circuit of pledge from on link i, creating it
// within the limits, or nil if the datagram is refused.
func (p *Stateful) circuitFor(i int, link net.PacketConn, from net.Addr) *circuit {
	prefix := strconv.Itoa(i) + " "
	key := prefix + from.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.circuits[key]; c != nil {
		return c
	}
	if p.stopped {
		return nil
	}
	hostKey := prefix + pledgeHost(from)
	now := p.cfg.now()
	if p.perPledge[hostKey] >= p.cfg.perPledge || p.perLink[i] >= p.cfg.perInterface {
		// The bound may be held by circuits the sweeper has not reached.
		p.expireLocked(now)
	}
	switch {
	case p.perPledge[hostKey] >= p.cfg.perPledge:
		p.ctr.drop(dropPledgeLimit)
		p.pktLog.Info().Stringer("pledge", from).Int("link", i).Msg("pledge at its circuit limit: refused")
		return nil
	case p.perLink[i] >= p.cfg.perInterface:
		p.ctr.drop(dropInterfaceLimit)
		p.pktLog.Info().Stringer("pledge", from).Int("link", i).Msg("interface at its circuit limit: refused")
		return nil
	}
	up, err := p.listen()
	if err != nil {
		p.ctr.drop(dropUpstream)
		p.pktLog.Warn().Err(err).Msg("open registrar-facing socket")
		return nil
	}
	c := &circuit{key: key, hostKey: hostKey, link: i, pledge: from, up: up}
	c.last.Store(now.UnixNano())
	p.circuits[key] = c
	p.perPledge[hostKey]++
	p.perLink[i]++
	p.relays.Go(func() { p.relayDown(c, link) })
	p.pktLog.Debug().Stringer("pledge", from).Stringer("via", up.LocalAddr()).Msg("circuit opened")
	return c
}

// relayDown relays the registrar's datagrams on c back to its pledge until
// c's socket is closed.
func (p *Stateful) relayDown(c *circuit, link net.PacketConn) {
	defer p.remove(c)
	buf := make([]byte, p.cfg.maxDatagram+1)
	for {
		n, from, err := c.up.ReadFrom(buf)
		if err != nil {
			return
		}
		switch {
		case n > p.cfg.maxDatagram:
			p.ctr.drop(dropTooBig)
			continue
		case !sameAddr(from, p.regKey):
			p.ctr.drop(dropNotRegistrar)
			continue
		}
		if _, err := link.WriteTo(buf[:n], c.pledge); err != nil {
			p.ctr.drop(dropWrite)
			p.pktLog.Debug().Err(err).Stringer("pledge", c.pledge).Msg("relay to pledge")
			continue
		}
		c.last.Store(p.cfg.now().UnixNano())
		p.ctr.down.Add(1)
	}
}

// remove forgets c if it is still registered and closes its socket.
func (p *Stateful) remove(c *circuit) {
	p.mu.Lock()
	p.forgetLocked(c)
	p.mu.Unlock()
	_ = c.up.Close()
}

func (p *Stateful) forgetLocked(c *circuit) {
	if p.circuits[c.key] != c {
		return
	}
	delete(p.circuits, c.key)
	if p.perPledge[c.hostKey]--; p.perPledge[c.hostKey] <= 0 {
		delete(p.perPledge, c.hostKey)
	}
	p.perLink[c.link]--
}

// expireLocked ends the circuits idle for the state timeout at now.
func (p *Stateful) expireLocked(now time.Time) {
	cutoff := now.Add(-p.cfg.stateTimeout).UnixNano()
	for _, c := range p.circuits {
		if c.last.Load() <= cutoff {
			p.forgetLocked(c)
			_ = c.up.Close() // its relayDown returns
			p.pktLog.Debug().Stringer("pledge", c.pledge).Msg("circuit expired")
		}
	}
}

// sweep expires idle circuits until ctx is done. It looks at least once a
// second, so an injected clock that jumps is noticed promptly.
func (p *Stateful) sweep(ctx context.Context) {
	t := time.NewTicker(max(min(p.cfg.stateTimeout/4, time.Second), time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.expireLocked(p.cfg.now())
		p.mu.Unlock()
	}
}

// shutdown closes every circuit and refuses new ones.
func (p *Stateful) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for _, c := range p.circuits {
		p.forgetLocked(c)
		_ = c.up.Close()
	}
}
