package joinproxy

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Stateless is a stateless constrained join proxy. It keeps no per-pledge
// state: each pledge datagram goes to the registrar's JPY port as a JPY
// message
//
//	JPY[H(IP_P:p_P, interface), C(datagram)]
//
// from one fixed registrar-facing socket, and each JPY message the
// registrar returns with the same header goes to the pledge the header
// names. The header is sealed with AES-CCM (64-bit tag) under a key only
// this proxy holds, replaced every WithKeyRotation period; the previous key
// still opens replies for one more period. A message whose header does not
// open, that does not parse, or that does not come from the registrar is
// dropped silently and counted.
//
// A rotation changes the header a pledge's datagrams get, which the
// registrar sees as a new peer: a DTLS handshake that straddles a rotation
// fails and the pledge starts again. The draft accepts this and recommends
// infrequent rotation ([JP] §"JPY Message Security").
//
// draft-ietf-anima-constrained-join-proxy §"Stateless Join Proxy",
// §"JPY Protocol and Messages".
type Stateless struct {
	registrar net.Addr
	regKey    string
	cfg       config
	log       zerolog.Logger
	pktLog    zerolog.Logger
	ctr       *counters
	keys      *keyring
	run       runner
}

// NewStateless returns a stateless join proxy that sends to the registrar's
// JPY endpoint (the address of the registrar's rt=brski.rjp link, scheme
// jpy in the -20 editor's copy, coaps+jpy before; there is no default
// port). It draws its first header key now.
// Options: WithLogger, WithMetrics, WithClock, WithMaxDatagram,
// WithKeyRotation, WithRand.
func NewStateless(registrar net.Addr, opts ...Option) (*Stateless, error) {
	if registrar == nil {
		return nil, invalid("NewStateless needs the registrar's JPY address")
	}
	cfg, err := newConfig(modeStateless, opts)
	if err != nil {
		return nil, err
	}
	keys, err := newKeyring(cfg.rand, cfg.now, cfg.keyPeriod)
	if err != nil {
		return nil, err
	}
	p := &Stateless{
		registrar: registrar,
		regKey:    registrar.String(),
		cfg:       cfg,
		log:       cfg.log,
		pktLog:    sampled(cfg.log),
		keys:      keys,
	}
	if p.ctr, err = newCounters(modeStateless, cfg.reg, nil, keys.Rotations); err != nil {
		return nil, err
	}
	return p, nil
}

// Serve relays between the pledge-facing links (one per interface, at the
// join port; at most 256) and the registrar through upstream, the one
// registrar-facing socket, until ctx is done or Close is called; then it
// closes them all and returns nil. A read error on any socket ends Serve
// with that error. Serve may be called once. It owns upstream and the links.
func (p *Stateless) Serve(ctx context.Context, upstream net.PacketConn, links ...net.PacketConn) error {
	if err := checkLinks(links); err != nil || upstream == nil {
		closeAll(links...)
		closeAll(upstream)
		if err == nil {
			err = invalid("nil upstream")
		}
		return err
	}
	run, cancel, err := p.run.begin(ctx)
	if err != nil {
		closeAll(links...)
		closeAll(upstream)
		return err
	}
	defer cancel()
	g, gctx := errgroup.WithContext(run)
	g.Go(func() error {
		<-gctx.Done()
		closeAll(links...)
		closeAll(upstream)
		return nil
	})
	for i, l := range links {
		g.Go(func() error { return p.readLink(gctx, i, l, upstream) })
	}
	g.Go(func() error { return p.readUpstream(gctx, upstream, links) })
	p.log.Info().Stringer("registrar", p.registrar).Stringer("via", upstream.LocalAddr()).
		Int("links", len(links)).Msg("stateless join proxy serving")
	return g.Wait()
}

// Close stops Serve. It does not wait for Serve to return.
func (p *Stateless) Close() error {
	p.run.close()
	return nil
}

// Stats returns the proxy's counters.
func (p *Stateless) Stats() Stats { return p.ctr.snapshot() }

// readLink wraps datagrams from pledges on link i and sends them to the
// registrar.
func (p *Stateless) readLink(ctx context.Context, i int, link, upstream net.PacketConn) error {
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
		b, err := p.wrap(i, from, buf[:n])
		if err != nil {
			if errors.Is(err, ErrUnaddressable) {
				p.ctr.drop(dropUnaddressable)
			} else {
				p.ctr.drop(dropUpstream)
			}
			p.pktLog.Warn().Err(err).Stringer("pledge", from).Msg("wrap pledge datagram")
			continue
		}
		if _, err := upstream.WriteTo(b, p.registrar); err != nil {
			p.ctr.drop(dropWrite)
			p.pktLog.Debug().Err(err).Msg("send JPY to registrar")
			continue
		}
		p.ctr.up.Add(1)
	}
}

// wrap is the JPY message for datagram b from pledge on link.
func (p *Stateless) wrap(link int, pledge net.Addr, b []byte) ([]byte, error) {
	h, err := p.keys.seal(link, pledge)
	if err != nil {
		return nil, err
	}
	return Message{Header: h, Content: b}.Encode()
}

// readUpstream unwraps the registrar's JPY messages and sends their
// content to the pledges their headers name.
func (p *Stateless) readUpstream(ctx context.Context, upstream net.PacketConn, links []net.PacketConn) error {
	network := func(i int) (string, bool) {
		if i >= len(links) {
			return "", false
		}
		return links[i].LocalAddr().Network(), true
	}
	buf := make([]byte, MaxMessage+1)
	for {
		n, from, err := upstream.ReadFrom(buf)
		if err != nil {
			if readEnded(ctx) {
				return nil
			}
			return fmt.Errorf("joinproxy: registrar side: read: %w", err)
		}
		if !sameAddr(from, p.regKey) {
			p.ctr.drop(dropNotRegistrar)
			continue
		}
		link, pledge, content, reason, err := p.unwrap(buf[:n], network)
		if err != nil {
			p.ctr.drop(reason)
			// Silently, as far as the network is concerned ([JP] §"JPY
			// Message Security"); rate-limited for the operator.
			p.pktLog.Debug().Err(err).Msg("JPY from registrar dropped")
			continue
		}
		if _, err := links[link].WriteTo(content, pledge); err != nil {
			p.ctr.drop(dropWrite)
			p.pktLog.Debug().Err(err).Stringer("pledge", pledge).Msg("relay to pledge")
			continue
		}
		p.ctr.down.Add(1)
	}
}

// unwrap decodes a JPY message from the registrar and opens its header.
func (p *Stateless) unwrap(b []byte, network func(int) (string, bool)) (int, net.Addr, []byte, reasonID, error) {
	if len(b) > MaxMessage {
		return 0, nil, nil, dropTooBig, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	m, err := Decode(b)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return 0, nil, nil, dropTooBig, err
		}
		return 0, nil, nil, dropMalformed, err
	}
	link, pledge, err := p.keys.open(m.Header, network)
	if err != nil {
		if errors.Is(err, ErrBadHeader) {
			return 0, nil, nil, dropBadHeader, err
		}
		return 0, nil, nil, dropUpstream, err
	}
	if len(m.Content) > p.cfg.maxDatagram {
		return 0, nil, nil, dropTooBig, fmt.Errorf("%w: content %d bytes", ErrTooLarge, len(m.Content))
	}
	return link, pledge, m.Content, 0, nil
}
