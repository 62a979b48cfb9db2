// Package checkin takes devices' weekly proof of life: OSCORE contexts
// provisioned over the LDevID-authenticated DTLS session (POST /t/oscore),
// OSCORE-protected check-ins (POST /ci) acknowledged only once their signed
// record is durable, and a tracker that records every missed window.
package checkin

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/oscore"
	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// Paths served.
const (
	PathProvision = "/t/oscore"
	PathCheckin   = "/ci"
)

// Identify maps a DTLS peer presenting an LDevID this domain issued to its
// device (the registrar implements it).
type Identify func(ctx context.Context, peer coap.Peer) (store.DeviceID, error)

// Service is the check-in service.
type Service struct {
	cfg      Config
	store    *store.Store
	journal  *journal.Journal
	identify Identify
	contexts *contexts
	oscore   *oscore.Handler
	now      func() time.Time
	rand     io.Reader
	log      zerolog.Logger
	m        *metrics
	// resetHook performs a pending reset when the device checks in.
	resetHook func(ctx context.Context, dev store.Device) error
}

// Check-in response keys (docs/oscore-provisioning.md).
const (
	respDue       = 1 // seconds until the next check-in is due
	respAction    = 2 // "reset" or "rebootstrap"
	respRegistrar = 3 // rebootstrap: where the new owner's registrar is
)

// SetResetHook sets how a pending reset is carried out when the device
// checks in: after its check-in is recorded, f revokes and records; only if
// f succeeds is the device told to reset.
func (s *Service) SetResetHook(f func(ctx context.Context, dev store.Device) error) { s.resetHook = f }

// Option configures New.
type Option func(*options)

type options struct {
	now  func() time.Time
	rand io.Reader
	log  zerolog.Logger
	reg  prometheus.Registerer
}

// WithClock sets the clock (the testbed scales time with it).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRand sets the source of OSCORE master secrets and salts.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.log = l.With().Str("component", "checkin").Logger() }
}

// WithMetrics registers the service's metrics (and the OSCORE handler's).
func WithMetrics(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New builds the service.
func New(cfg Config, s *store.Store, j *journal.Journal, identify Identify, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now, rand: rand.Reader, log: zerolog.Nop()}
	for _, f := range opts {
		f(&o)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	svc := &Service{cfg: cfg, store: s, journal: j, identify: identify, now: o.now, rand: o.rand, log: o.log, m: m,
		contexts: newContexts(s, cfg.MaxContexts, oscore.WithClock(o.now))}
	inner := coap.NewMux()
	inner.HandleFunc(PathCheckin, svc.serveCheckin, coap.Link{Hidden: true}, codes.POST)
	hopts := []oscore.HandlerOption{oscore.WithLogger(o.log)}
	if o.reg != nil {
		hopts = append(hopts, oscore.WithRegisterer(o.reg))
	}
	if svc.oscore, err = oscore.NewHandler(svc.contexts, inner, hopts...); err != nil {
		return nil, err
	}
	return svc, nil
}

// RegisterProvisioning adds /t/oscore to the DTLS (CoAPS) mux.
func (s *Service) RegisterProvisioning(m *coap.Mux) {
	m.HandleFunc(PathProvision, s.serveProvision, coap.Link{Attrs: [][2]string{{"rt", "tumbler.oscore"}, {"ct", "60"}}}, codes.POST)
}

// Dispatch returns the handler for the plain CoAP port: OSCORE-protected
// requests (they carry the OSCORE option and no Uri-Path) go to the
// check-in service, everything else to fallback (discovery).
func (s *Service) Dispatch(fallback coap.Handler) coap.Handler {
	return coap.HandlerFunc(func(ctx context.Context, r *coap.Request) (*coap.Response, error) {
		// A check-in without OSCORE goes to the OSCORE handler too, which
		// answers it 4.01 "OSCORE required" (not the mux's 4.04).
		if r.Options.HasOption(coap.OptionOSCORE) || r.Path == PathCheckin {
			return s.oscore.ServeCoAP(ctx, r)
		}
		return fallback.ServeCoAP(ctx, r)
	})
}

// Forget drops a device's cached context and device row after the store
// replaced or deleted its context or changed its state (reset,
// decommission, transfer).
func (s *Service) Forget(dev store.DeviceID) { s.contexts.dropDevice(dev) }

// serveCheckin is POST /ci inside OSCORE: the device's check-in map in
// (CF 60), a signed "checkin" record committed with the new schedule and
// the replay window, then 2.04 {1: seconds until the next check-in is due}.
func (s *Service) serveCheckin(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	start := time.Now()
	resp, err := s.checkin(ctx, r)
	s.m.observe(err, time.Since(start))
	return resp, err
}

func (s *Service) checkin(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	ex, ok := oscore.ExchangeFrom(ctx)
	if !ok {
		return nil, coap.Errorf(codes.Unauthorized, "OSCORE required", oscore.ErrNotProtected)
	}
	if r.ContentFormat != coap.FormatCBOR {
		return nil, coap.Errorf(codes.UnsupportedMediaType, "check-in must be CF 60", ErrContentFormat)
	}
	e, err := s.contexts.entry(ctx, ex.KID(), nil)
	if err != nil {
		return nil, err
	}
	dev, err := e.deviceRow(ctx, s.store)
	if err != nil {
		return nil, err
	}
	if dev.State != store.StateActive && dev.State != store.StateEnrolled {
		return nil, coap.Errorf(codes.Forbidden, "device not active", fmt.Errorf("%w: state %s", ErrInactive, dev.State))
	}
	body, err := record.ParseCheckInRequest(r.Payload)
	if err != nil {
		return nil, coap.Errorf(codes.BadRequest, "malformed check-in", fmt.Errorf("%w: %w", ErrPayload, err))
	}
	cl := s.cfg.class(dev.Class)
	now := s.now()
	due := now.Add(cl.Interval)
	seq := ex.Seq()
	body.OSCORESeq, body.NextDue = &seq, due
	// The in-memory window already covers this request (marked at
	// decryption); persisting it with the record makes "answered" imply
	// "never accepted again", across crashes.
	ws, _ := ex.Context().ReplayWindow()
	_, err = s.journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial}, body, func(tx *store.Tx) error {
		return tx.SetCheckin(dev.ID, now, due, due.Add(cl.Grace), ws.Highest, ws.Bitmap)
	})
	if err != nil {
		return nil, coap.Errorf(codes.ServiceUnavailable, "not recorded, retry", err)
	}
	ex.MarkDurable()
	if dev.Missed > 0 {
		s.log.Info().Str("serial", dev.Serial).Int("missed", dev.Missed).Msg("overdue device checked in")
		e.mu.Lock()
		e.dev.Missed = 0
		e.mu.Unlock()
	}
	resp := map[int]any{respDue: uint64(cl.Interval / time.Second)}
	switch dev.Pending {
	case store.ActionReset:
		if s.resetHook == nil {
			break
		}
		if err := s.resetHook(ctx, dev); err != nil {
			s.log.Error().Err(err).Str("serial", dev.Serial).Msg("pending reset")
			break
		}
		resp[respAction] = store.ActionReset
		s.Forget(dev.ID)
	case store.ActionRebootstrap:
		resp[respAction] = store.ActionRebootstrap
		if dev.PendingRegistrar != "" {
			resp[respRegistrar] = dev.PendingRegistrar
		}
	}
	payload, err := cose.Marshal(resp)
	if err != nil {
		return nil, err
	}
	return coap.Changed(coap.FormatCBOR, payload), nil
}
