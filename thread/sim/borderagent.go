// Package sim simulates the Thread side of a CCM border router for tests
// and the testbed: a Border Agent that accepts one commissioner's DTLS
// session (certificate from the domain CA), the Leader's commissioner
// bookkeeping behind it (petition, keep-alive with the 50 s timeout,
// commissioner dataset), and a Joiner Router that relays joiner datagrams
// between a simulated link (testbed/radio) and the commissioner with
// RLY_RX.ntf / RLY_TX.ntf.
//
//	pledge (testbed/mote) ⇄ radio ⇄ Joiner Router ⇄ c/rx, c/tx on the
//	commissioner session ⇄ relay.Conn ⇄ registrar DTLS server
//
// It models OpenThread's behaviour where the commissioner can observe it:
// src/core/meshcop/border_agent.cpp (c/tx must be Non-confirmable, it is
// forwarded to the Joiner Router named by its locator), meshcop_leader.cpp
// (petition, keep-alive, session IDs, 50 s timeout) and joiner_router.cpp
// (the joiner port is open only while joining is enabled; RLY_RX carries
// port, IID, locator, encapsulation; RLY_TX goes to [fe80::IID]:port).
// It does not model the mesh, MLE discovery, JOIN_ENT or the network key.
package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"crypto/rand"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/thread/internal/tmf"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// Defaults.
const (
	// LeaderTimeout is TIMEOUT_LEAD_PET: the leader drops a commissioner
	// that sent no keep-alive for this long (OpenThread meshcop_leader.hpp
	// kTimeoutLeaderPetition = 50).
	LeaderTimeout = 50 * time.Second
	// DefaultLocator is the Joiner Router's RLOC16.
	DefaultLocator = 0x0400
	// DefaultJoinerRouterPort is the joiner port a Joiner Router opens
	// (OPENTHREAD_CONFIG_JOINER_UDP_PORT, 1000).
	DefaultJoinerRouterPort = 1000
)

// ErrConfig reports a bad Config.
var ErrConfig = errors.New("sim: invalid configuration")

// Config describes the simulated border router.
type Config struct {
	// Certificate is the Border Agent's DTLS certificate (its LDevID from
	// the domain CA) and key.
	Certificate tls.Certificate
	// ClientCAs verifies the commissioner's certificate (the domain CA).
	ClientCAs *x509.CertPool
	// Locator is the Joiner Router's RLOC16 (default DefaultLocator).
	Locator uint16
	// Log receives events.
	Log zerolog.Logger
	// Now is the leader's clock (default time.Now).
	Now func() time.Time
	// Rand seeds the first Commissioner Session ID (default crypto/rand;
	// OpenThread starts from a random value).
	Rand io.Reader
	// FlightInterval is the DTLS retransmission interval.
	FlightInterval time.Duration
}

// Stats counts what the simulated border router saw.
type Stats struct {
	Petitions, KeepAlives, Resigns, CommissionerSets uint64
	// RelayedRx joiner datagrams sent to the commissioner as RLY_RX;
	// RelayedTx RLY_TX datagrams sent to joiners.
	RelayedRx, RelayedTx uint64
	// DroppedJoining: joiner datagrams while joining is disabled (no
	// active commissioner, or empty steering data).
	DroppedJoining uint64
	// DroppedTx: RLY_TX refused (Confirmable, malformed, other locator).
	DroppedTx uint64
	// KEKs: RLY_TX carrying a Joiner Router KEK.
	KEKs uint64
}

type counters struct {
	petitions, keepAlives, resigns, sets, rx, tx, dropJoin, dropTx, keks atomic.Uint64
}

// BorderAgent is the simulated Border Agent, Leader and Joiner Router.
type BorderAgent struct {
	cfg   Config
	log   zerolog.Logger
	stats counters

	mu        sync.Mutex
	session   *tmf.Session
	jr        net.PacketConn // the Joiner Router's joiner port
	active    bool
	id        string
	sessionID uint16
	lastKA    time.Time
	steering  meshcop.SteeringData
}

// New returns a simulated border router.
func New(cfg Config) (*BorderAgent, error) {
	if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil || cfg.ClientCAs == nil {
		return nil, fmt.Errorf("%w: Certificate and ClientCAs are required", ErrConfig)
	}
	if cfg.Locator == 0 {
		cfg.Locator = DefaultLocator
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	var seed [2]byte
	if _, err := io.ReadFull(cfg.Rand, seed[:]); err != nil {
		return nil, fmt.Errorf("sim: rand: %w", err)
	}
	return &BorderAgent{
		cfg:       cfg,
		log:       cfg.Log.With().Str("component", "sim-border-agent").Logger(),
		sessionID: binary.BigEndian.Uint16(seed[:]),
		steering:  meshcop.SteeringData{0},
	}, nil
}

// JoinerRouterAddr is the Joiner Router's joiner-port address on the
// simulated link: a link-local address derived from its RLOC16, port 1000.
func (b *BorderAgent) JoinerRouterAddr() string {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[11], a[12] = 0xff, 0xfe
	binary.BigEndian.PutUint16(a[14:], b.cfg.Locator)
	return netip.AddrPortFrom(netip.AddrFrom16(a), DefaultJoinerRouterPort).String()
}

// JoinerAddr is the link address a joiner uses on the simulated link: its
// link-local address (fe80:: + IID, the Joiner ID with the U/L bit
// flipped) and source port 993, the OpenThread CCM cBRSKI joiner port.
func JoinerAddr(id meshcop.JoinerID) string {
	return JoinerAddrPort(id, 993)
}

// JoinerAddrPort is JoinerAddr with another source port.
func JoinerAddrPort(id meshcop.JoinerID, port uint16) string {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	iid := id.IID()
	copy(a[8:], iid[:])
	return netip.AddrPortFrom(netip.AddrFrom16(a), port).String()
}

// Stats returns a snapshot of the counters.
func (b *BorderAgent) Stats() Stats {
	s := &b.stats
	return Stats{
		Petitions: s.petitions.Load(), KeepAlives: s.keepAlives.Load(), Resigns: s.resigns.Load(),
		CommissionerSets: s.sets.Load(), RelayedRx: s.rx.Load(), RelayedTx: s.tx.Load(),
		DroppedJoining: s.dropJoin.Load(), DroppedTx: s.dropTx.Load(), KEKs: s.keks.Load(),
	}
}

// Commissioner reports the active commissioner as the leader sees it:
// its ID, session ID and steering data, or ok false.
func (b *BorderAgent) Commissioner() (id string, sessionID uint16, steering meshcop.SteeringData, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	return b.id, b.sessionID, append(meshcop.SteeringData(nil), b.steering...), b.active
}

// Disconnect closes the current commissioner session, as a Border Agent
// restart would.
func (b *BorderAgent) Disconnect() {
	b.mu.Lock()
	s := b.session
	b.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
}

// Serve runs the Border Agent's DTLS service on pc until ctx ends: one
// commissioner session at a time, as OpenThread's Border Agent. A
// ClientHello from another address while a session is up is dropped.
// Serve closes pc.
func (b *BorderAgent) Serve(ctx context.Context, pc net.PacketConn) error {
	g, ctx := errgroup.WithContext(ctx)
	accept := make(chan *peerConn)
	var mu sync.Mutex
	var cur *peerConn
	g.Go(func() error {
		<-ctx.Done()
		_ = pc.Close()
		return nil
	})
	g.Go(func() error {
		defer close(accept)
		buf := make([]byte, 2048)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("sim: Border Agent read: %w", err)
			}
			d := append([]byte(nil), buf[:n]...)
			mu.Lock()
			p := cur
			if p != nil && p.isClosed() {
				p, cur = nil, nil
			}
			if p != nil && p.raddr.String() == addr.String() {
				mu.Unlock()
				p.push(d)
				continue
			}
			if p != nil || !isClientHello(d) {
				mu.Unlock()
				continue
			}
			p = newPeerConn(pc, addr)
			p.push(d)
			cur = p
			mu.Unlock()
			select {
			case accept <- p:
			case <-ctx.Done():
				return nil
			}
		}
	})
	g.Go(func() error {
		for p := range accept {
			b.serveSession(ctx, p)
		}
		return nil
	})
	return g.Wait()
}

// serveSession runs one commissioner session until it ends.
func (b *BorderAgent) serveSession(ctx context.Context, p *peerConn) {
	defer p.Close()
	mux := coap.NewMux()
	for path, h := range map[string]coap.HandlerFunc{
		meshcop.PathPetition:        b.handlePetition,
		meshcop.PathKeepAlive:       b.handleKeepAlive,
		meshcop.PathCommissionerSet: b.handleCommissionerSet,
		meshcop.PathRelayTx:         b.handleRelayTx,
	} {
		mux.Handle(path, h, coap.Link{Hidden: true}, codes.POST)
	}
	s, err := tmf.Accept(ctx, p, p.raddr, tmf.DTLS{
		Certificate: b.cfg.Certificate, Roots: b.cfg.ClientCAs, FlightInterval: b.cfg.FlightInterval,
	}, tmf.Config{Handler: mux, Log: b.log, ID: "commissioner", NonConfirmableOnly: []string{meshcop.PathRelayTx}})
	if err != nil {
		b.log.Info().Err(err).Msg("commissioner handshake failed")
		return
	}
	b.mu.Lock()
	b.session = s
	b.mu.Unlock()
	b.log.Info().Stringer("peer", p.raddr).Msg("commissioner session up")
	select {
	case <-s.Done():
	case <-ctx.Done():
	}
	_ = s.Close()
	b.mu.Lock()
	if b.session == s {
		b.session = nil
	}
	b.mu.Unlock()
	b.log.Info().Msg("commissioner session ended")
}

// expire drops the commissioner after LeaderTimeout without keep-alive
// (b.mu held).
func (b *BorderAgent) expire() {
	if b.active && b.cfg.Now().Sub(b.lastKA) > LeaderTimeout {
		b.log.Info().Str("commissioner", b.id).Msg("leader: commissioner timed out")
		b.resign()
	}
}

// resign empties the commissioning data with a new session ID
// (meshcop_leader.cpp ResignCommissioner, SetEmptyCommissionerData).
func (b *BorderAgent) resign() {
	b.active, b.id = false, ""
	b.sessionID++
	b.steering = meshcop.SteeringData{0}
}

func stateResponse(s meshcop.State) (*coap.Response, error) {
	p, err := (&meshcop.StateResult{State: s}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return coap.Changed(coap.FormatNone, p), nil
}

func badRequest(what string, err error) error {
	return coap.Errorf(codes.BadRequest, "malformed "+what, err)
}
