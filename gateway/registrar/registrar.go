// Package registrar is Tumbler's cBRSKI registrar
// (draft-ietf-anima-constrained-voucher-31, RFC 8995 §5): it takes pledge
// voucher-requests over CoAP/DTLS, asks the manufacturer's MASA for a
// voucher, records the exchange, takes status telemetry, and tells the
// EST-coaps server who may enroll.
//
// It knows nothing about sockets: it is a set of coap.Handler functions and
// the est.Authorizer and est.Recorder interfaces.
package registrar

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
)

// Well-known paths of cBRSKI (-31 §"Request URIs"; RFC 8995 short names).
const (
	PathBase = "/.well-known/brski"
	PathRV   = PathBase + "/rv"
	PathVS   = PathBase + "/vs"
	PathES   = PathBase + "/es"
)

// Policy decides which pledges the registrar takes.
type Policy string

// Registrar policies.
const (
	// Open: any pledge with an IDevID from a trusted manufacturer.
	Open Policy = "open"
	// Expected: only devices the owner registered by serial number or
	// IDevID hash; others get 4.03.
	Expected Policy = "expected"
)

// Config is what a registrar needs.
type Config struct {
	// Chain is the registrar's certificate (first; it must carry
	// id-kp-cmcRA) and its CAs up to the domain CA (last).
	Chain []*x509.Certificate
	// Key is the registrar certificate's key; it signs voucher-requests.
	Key crypto.Signer
	// Manufacturers are the CAs whose IDevIDs are trusted.
	Manufacturers []*x509.Certificate
	// Policy: Open or Expected.
	Policy Policy
	// MASAURL is used when an IDevID has no id-pe-masa-url extension.
	MASAURL string
	// MASA sends voucher-requests.
	MASA MASAClient
	// Store records exchanges and device state.
	Store *store.Store
	// MASATimeout bounds one voucher round trip (default 20 s).
	MASATimeout time.Duration
	// Journal records enrollments; nil records none (tests of the
	// voucher path alone).
	Journal *journal.Journal
}

// Registrar serves cBRSKI.
type Registrar struct {
	cfg     Config
	cert    *x509.Certificate
	chain   [][]byte // registrar chain DER for the RVR x5bag
	mfr     map[string]*x509.Certificate
	domain  *x509.Certificate
	now     func() time.Time
	rand    io.Reader
	log     zerolog.Logger
	metrics *metrics

	// afterEnroll runs after an enrollment committed (ownership: transfer
	// in, repossession records).
	afterEnroll func(ctx context.Context, id store.DeviceID, serial string) error
	// onReset runs after a device reset itself (the gateway forgets its
	// cached check-in state and revoked certificates).
	onReset func(id store.DeviceID, revoked [][]byte)
}

// SetOnReset sets a function called after a device-side reset committed.
func (r *Registrar) SetOnReset(f func(id store.DeviceID, revoked [][]byte)) { r.onReset = f }

// SetAfterEnroll sets a function called after each initial enrollment
// committed; its error is logged (the enrollment stands).
func (r *Registrar) SetAfterEnroll(f func(ctx context.Context, id store.DeviceID, serial string) error) {
	r.afterEnroll = f
}

// Chain is the registrar's certificate chain (registrar first).
func (r *Registrar) Chain() []*x509.Certificate { return r.cfg.Chain }

// Key is the registrar's signing key.
func (r *Registrar) Key() crypto.Signer { return r.cfg.Key }

// MASA is the client the registrar talks to MASAs with.
func (r *Registrar) MASA() MASAClient { return r.cfg.MASA }

// Option configures New.
type Option func(*Registrar) error

// WithClock sets the clock.
func WithClock(now func() time.Time) Option {
	return func(r *Registrar) error { r.now = now; return nil }
}

// WithRand sets the randomness used for signatures.
func WithRand(rd io.Reader) Option {
	return func(r *Registrar) error { r.rand = rd; return nil }
}

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(r *Registrar) error { r.log = l.With().Str("component", "registrar").Logger(); return nil }
}

// WithMetrics registers the registrar's metrics.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(r *Registrar) error {
		m, err := newMetrics(reg)
		r.metrics = m
		return err
	}
}

// New validates cfg and returns a registrar.
func New(cfg Config, opts ...Option) (*Registrar, error) {
	switch {
	case len(cfg.Chain) == 0:
		return nil, fmt.Errorf("registrar: %w: no certificate", ErrConfig)
	case cfg.Key == nil:
		return nil, fmt.Errorf("registrar: %w: no key", ErrConfig)
	case !pki.HasCmcRA(cfg.Chain[0]):
		return nil, fmt.Errorf("registrar: %w: certificate lacks id-kp-cmcRA", ErrConfig)
	case len(cfg.Manufacturers) == 0:
		return nil, fmt.Errorf("registrar: %w: no manufacturer CA", ErrConfig)
	case cfg.MASA == nil:
		return nil, fmt.Errorf("registrar: %w: no MASA client", ErrConfig)
	case cfg.Store == nil:
		return nil, fmt.Errorf("registrar: %w: no store", ErrConfig)
	}
	if pub, ok := cfg.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cfg.Chain[0].PublicKey) {
		return nil, fmt.Errorf("registrar: %w: key does not match the certificate", ErrConfig)
	}
	switch cfg.Policy {
	case "":
		cfg.Policy = Open
	case Open, Expected:
	default:
		return nil, fmt.Errorf("registrar: %w: policy %q (want %q or %q)", ErrConfig, cfg.Policy, Open, Expected)
	}
	if cfg.MASAURL != "" {
		u, err := pki.NormalizeMASAURL(cfg.MASAURL)
		if err != nil {
			return nil, fmt.Errorf("registrar: %w: MASA URL: %v", ErrConfig, err)
		}
		cfg.MASAURL = u
	}
	if cfg.MASATimeout <= 0 {
		cfg.MASATimeout = 20 * time.Second
	}
	r := &Registrar{cfg: cfg, cert: cfg.Chain[0], domain: cfg.Chain[len(cfg.Chain)-1],
		mfr: make(map[string]*x509.Certificate), now: time.Now, log: zerolog.Nop()}
	for _, c := range cfg.Chain {
		r.chain = append(r.chain, c.Raw)
	}
	for _, c := range cfg.Manufacturers {
		r.mfr[string(c.RawSubject)] = c
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.metrics == nil {
		r.metrics, _ = newMetrics(nil)
	}
	return r, nil
}

// DomainCA is the certificate pledges are told to pin.
func (r *Registrar) DomainCA() *x509.Certificate { return r.domain }

// Register adds the cBRSKI resources to m, with the discovery links of
// cBRSKI -31 App. "Pledge Discovery".
func (r *Registrar) Register(m *coap.Mux) {
	m.AddLink(PathBase, [2]string{"rt", "brski"})
	m.HandleFunc(PathRV, r.serveRV, coap.Link{Attrs: [][2]string{{"rt", "brski.rv"}, {"ct", "836"}}}, codes.POST)
	m.HandleFunc(PathVS, r.serveVS, coap.Link{Attrs: [][2]string{{"rt", "brski.vs"}, {"ct", "60"}}}, codes.POST)
	m.HandleFunc(PathES, r.serveES, coap.Link{Attrs: [][2]string{{"rt", "brski.es"}, {"ct", "60"}}}, codes.POST)
}

// pledge is an authenticated IDevID peer.
type pledge struct {
	idevid *x509.Certificate
	chain  []*x509.Certificate // as presented in DTLS, leaf first
	id     store.DeviceID
	serial string
}

// pledgeOf returns the IDevID identity of a DTLS peer. The DTLS layer
// verified the chain against the manufacturer and domain CAs; here the
// issuer is matched by name to tell an IDevID from an LDevID.
func (r *Registrar) pledgeOf(p coap.Peer) (*pledge, error) {
	if !p.Secure() {
		return nil, coap.Errorf(codes.Unauthorized, "client certificate required", ErrNotPledge)
	}
	top := p.Chain[len(p.Chain)-1]
	if _, ok := r.mfr[string(top.RawIssuer)]; !ok {
		if _, self := r.mfr[string(top.RawSubject)]; !self {
			return nil, coap.Errorf(codes.Forbidden, "IDevID required", ErrNotPledge)
		}
	}
	leaf := p.Chain[0]
	if leaf.Subject.SerialNumber == "" {
		return nil, coap.Errorf(codes.BadRequest, "IDevID has no serialNumber", ErrNotPledge)
	}
	return &pledge{idevid: leaf, chain: p.Chain, id: pki.DeviceID(leaf), serial: leaf.Subject.SerialNumber}, nil
}

// IdentifyLDevID maps a DTLS peer presenting an unrevoked LDevID this
// domain issued to its device; an IDevID peer is refused.
func (r *Registrar) IdentifyLDevID(ctx context.Context, p coap.Peer) (store.DeviceID, error) {
	if _, err := r.pledgeOf(p); err == nil {
		return store.DeviceID{}, coap.Errorf(codes.Forbidden, "LDevID required", ErrNotPledge)
	}
	return r.deviceOf(ctx, p)
}

// deviceOf identifies a peer by its IDevID, or by an LDevID this gateway
// issued (for /es after the pledge re-established DTLS with its new
// identity, RFC 8995 §5.9.4).
func (r *Registrar) deviceOf(ctx context.Context, p coap.Peer) (store.DeviceID, error) {
	if pl, err := r.pledgeOf(p); err == nil {
		return pl.id, nil
	}
	if !p.Secure() {
		return store.DeviceID{}, coap.Errorf(codes.Unauthorized, "client certificate required", ErrNotPledge)
	}
	id, revoked, err := r.cfg.Store.CertificateStatus(ctx, p.Chain[0].SerialNumber)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return id, coap.Errorf(codes.Forbidden, "certificate not issued by this domain", ErrNotPledge)
	case err != nil:
		return id, err
	case revoked:
		return id, coap.Errorf(codes.Forbidden, "certificate revoked", ErrNotPledge)
	}
	return id, nil
}
