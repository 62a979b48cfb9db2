// Package commissioner is the Thread Commissioner role, external to the
// mesh: Tumbler connects to a Border Agent over DTLS, petitions to become
// the network's single active commissioner, publishes steering data for
// the joiners it expects, keeps the role alive and resigns on shutdown.
// Joiners then reach it through the Joiner Router relay (package relay),
// which this session carries.
//
// In Commercial Commissioning Mode (CCM) the DTLS credential towards the
// Border Agent is a certificate from the Thread Domain CA (the gateway's
// domain certificate), not the PSKc of a non-CCM network, whose EC-JPAKE
// handshake has no Go implementation (docs/decisions/0007-thread-ec-jpake.md).
// CCM's signed petitions (Commissioner Token and Signature TLVs with a
// COM_TOK from the Registrar, ot-commissioner SignRequest) are not sent: a
// Border Agent or leader that requires them refuses the petition, which
// Run retries with backoff and logs.
//
// Messages: COMM_PET (c/cp), COMM_KA (c/ca), MGMT_COMMISSIONER_SET (c/cs)
// as ot-commissioner sends them (src/library/commissioner_impl.cpp); the
// state machine is in internal/fsm.
package commissioner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/thread/commissioner/internal/fsm"
	"github.com/tumbler-iot/tumbler/thread/internal/tmf"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// State of the commissioner.
type State = fsm.State

// States.
const (
	Disconnected = fsm.Disconnected
	Petitioning  = fsm.Petitioning
	Active       = fsm.Active
	Stopped      = fsm.Stopped
)

// Config is what a commissioner needs to know.
type Config struct {
	// BorderAgent is the Border Agent's DTLS address (from the
	// _meshcop._udp SRV record; do not assume 49191).
	BorderAgent net.Addr
	// ID is the Commissioner ID (at most 64 bytes; default DefaultID).
	ID string
	// Certificate is the DTLS client credential: in CCM, a certificate
	// from the domain CA (chain leaf first, and key).
	Certificate tls.Certificate
	// RootCAs verifies the Border Agent's certificate (the domain CA).
	RootCAs *x509.CertPool
	// Joiners are the Joiner IDs to admit; ignored when AllowAll.
	Joiners []meshcop.JoinerID
	// AllowAll publishes the permit-all steering data (one 0xFF byte):
	// the registrar's policy decides, not the mesh.
	AllowAll bool
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.BorderAgent == nil:
		return invalid("BorderAgent is required")
	case len(c.ID) > maxCommissionerID:
		return invalid("ID is %d bytes, at most %d", len(c.ID), maxCommissionerID)
	case len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil:
		return invalid("Certificate needs a chain and a key")
	case c.RootCAs == nil:
		return invalid("RootCAs is required")
	}
	return nil
}

// Commissioner is the Commissioner role over one Border Agent.
type Commissioner struct {
	cfg Config
	o   options
	log zerolog.Logger
	mux *coap.Mux

	running atomic.Bool
	changed chan struct{} // steering data changed (capacity 1)

	mu       sync.Mutex
	session  *tmf.Session
	steering meshcop.SteeringData
	state    State
	sid      uint16
	nsession uint64
}

// New returns a commissioner for cfg. It does nothing until Run.
func New(cfg Config, opts ...Option) (*Commissioner, error) {
	if cfg.ID == "" {
		cfg.ID = DefaultID
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, f := range opts {
		if f == nil {
			return nil, invalid("nil option")
		}
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	c := &Commissioner{
		cfg:     cfg,
		o:       o,
		log:     o.log.With().Str("component", "thread-commissioner").Str("border_agent", cfg.BorderAgent.String()).Logger(),
		mux:     coap.NewMux(),
		changed: make(chan struct{}, 1),
	}
	c.steering = steeringFor(cfg.Joiners, cfg.AllowAll)
	return c, nil
}

// steeringFor is the permit-all filter, a 16-byte filter for ids, or the
// one zero byte that admits nobody.
func steeringFor(ids []meshcop.JoinerID, all bool) meshcop.SteeringData {
	switch {
	case all:
		return meshcop.AllowAll()
	case len(ids) == 0:
		return meshcop.SteeringData{0}
	}
	return meshcop.SteeringFor(ids...)
}

// Handle serves requests the Border Agent sends on the session to path
// (POST only): register the relay for meshcop.PathRelayRx. Call before
// Run.
func (c *Commissioner) Handle(path string, h coap.Handler) {
	c.mux.Handle(path, h, coap.Link{Hidden: true}, codes.POST)
}

// SetJoiners replaces the admitted joiners (or switches to permit-all);
// an active commissioner publishes the new steering data at once.
func (c *Commissioner) SetJoiners(ids []meshcop.JoinerID, all bool) {
	sd := steeringFor(ids, all)
	c.mu.Lock()
	c.steering = sd
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Steering is the steering data the commissioner publishes.
func (c *Commissioner) Steering() meshcop.SteeringData {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(meshcop.SteeringData(nil), c.steering...)
}

// State is the current state and, while Active, the session ID.
func (c *Commissioner) State() (State, uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.sid
}

// Notify sends a Non-confirmable request on the current session with the
// Border Agent: the relay's RLY_TX.ntf. It implements relay.Sender.
func (c *Commissioner) Notify(ctx context.Context, r *coap.Request) error {
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s == nil {
		return ErrNotConnected
	}
	return s.Notify(ctx, r)
}

// Run connects, petitions, publishes steering data and keeps the role
// until ctx ends; then it resigns (if active) and returns nil. Failures
// are retried with backoff, forever: Run returns an error only for misuse.
func (c *Commissioner) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	m := fsm.New(fsm.Config{
		KeepAliveMin: c.o.kaMin, KeepAliveMax: c.o.kaMax,
		BackoffMin: c.o.boMin, BackoffMax: c.o.boMax,
		Uniform: c.uniform,
	})
	defer c.setSession(nil)
	step := m.Start()
	for {
		c.publish(m)
		if step.After > 0 || ctx.Err() != nil {
			var ok bool
			if step, ok = c.wait(ctx, m, step); !ok {
				continue
			}
		}
		switch step.Do {
		case fsm.Dial:
			if err := c.dial(ctx); err != nil {
				c.log.Info().Err(err).Msg("Border Agent unreachable")
				step = m.TransportLost()
				continue
			}
			step = m.Connected()
		case fsm.Petition:
			step = c.petition(ctx, m)
		case fsm.SetSteering:
			step = c.setSteering(ctx, m)
		case fsm.KeepAlive:
			step = c.keepAlive(ctx, m)
		case fsm.Resign:
			c.resign(m.SessionID())
			c.publish(m)
			return nil
		case fsm.Close:
			c.publish(m)
			return nil
		}
	}
}

// wait sleeps step.After, cut short by shutdown, a lost session or (while
// active) new steering data. It returns the step to take and whether to
// take it now (false: re-evaluate, the returned step has its own wait).
func (c *Commissioner) wait(ctx context.Context, m *fsm.Machine, step fsm.Step) (fsm.Step, bool) {
	if ctx.Err() != nil {
		return m.Shutdown(), true
	}
	var lost <-chan struct{}
	c.mu.Lock()
	if c.session != nil {
		lost = c.session.Done()
	}
	c.mu.Unlock()
	timer := c.o.clock.After(step.After)
	for {
		select {
		case <-ctx.Done():
			return m.Shutdown(), true
		case <-lost:
			c.log.Info().Msg("session with the Border Agent lost")
			c.setSession(nil)
			return m.TransportLost(), false
		case <-c.changed:
			if s, now := m.SteeringChanged(); now {
				return s, true
			}
		case <-timer:
			step.After = 0
			return step, true
		}
	}
}

// dial opens a new DTLS session with the Border Agent.
func (c *Commissioner) dial(ctx context.Context) error {
	c.setSession(nil)
	pc, err := c.o.listen()
	if err != nil {
		return fmt.Errorf("commissioner: listen: %w", err)
	}
	c.mu.Lock()
	c.nsession++
	id := fmt.Sprintf("ba-%d", c.nsession)
	c.mu.Unlock()
	s, err := tmf.Dial(ctx, pc, c.cfg.BorderAgent, tmf.DTLS{
		Certificate: c.cfg.Certificate, Roots: c.cfg.RootCAs, FlightInterval: c.o.flightInterval,
	}, tmf.Config{Handler: c.mux, Log: c.log, Transmission: c.o.transmission, ID: id})
	if err != nil {
		return err
	}
	c.log.Info().Str("session", id).Msg("connected to the Border Agent")
	c.setSession(s)
	return nil
}

func (c *Commissioner) setSession(s *tmf.Session) {
	c.mu.Lock()
	old := c.session
	c.session = s
	c.mu.Unlock()
	if old != nil && old != s {
		_ = old.Close()
	}
}

// publish records the machine's state for State and the observer.
func (c *Commissioner) publish(m *fsm.Machine) {
	st, sid := m.State(), m.SessionID()
	c.mu.Lock()
	changed := st != c.state || sid != c.sid
	c.state, c.sid = st, sid
	c.mu.Unlock()
	if changed {
		c.log.Info().Stringer("state", st).Uint16("session_id", sid).Msg("commissioner state")
		if c.o.onState != nil {
			c.o.onState(st, sid)
		}
	}
}

// request sends a Confirmable POST of payload to path and returns the
// 2.04 payload. A transport failure returns (nil, err) with err not
// wrapping ErrResponse.
func (c *Commissioner) request(ctx context.Context, path string, payload []byte) ([]byte, error) {
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s == nil {
		return nil, ErrNotConnected
	}
	rctx, cancel := context.WithTimeout(ctx, c.o.requestTimeout)
	defer cancel()
	resp, err := s.Do(rctx, &coap.Request{Method: codes.POST, Path: path,
		ContentFormat: coap.FormatNone, Accept: coap.FormatNone, Payload: payload})
	if err != nil {
		return nil, err
	}
	if resp.Code != codes.Changed {
		return nil, fmt.Errorf("%w: %s answered %s", ErrResponse, path, coap.Dotted(resp.Code))
	}
	return resp.Payload, nil
}

// uniform draws a float in [0, 1) from the injected randomness.
func (c *Commissioner) uniform() float64 {
	var b [8]byte
	if _, err := io.ReadFull(c.o.rand, b[:]); err != nil {
		// Jitter only spreads timers; without randomness use the middle.
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}
