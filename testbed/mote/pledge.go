// Package mote is the device side of Tumbler: a cBRSKI pledge
// (draft-ietf-anima-constrained-voucher-31) that runs the real protocol —
// DTLS with its IDevID, a COSE-signed voucher-request, voucher validation
// against its manufacturer trust anchor, status telemetry and EST-coaps
// enrollment. The testbed runs many of them; it doubles as a reference for
// device implementers.
package mote

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/gateway/est"
	"github.com/tumbler-iot/tumbler/pki"
)

// Paths the pledge uses.
const (
	pathRV   = "/.well-known/brski/rv"
	pathVS   = "/.well-known/brski/vs"
	pathES   = "/.well-known/brski/es"
	pathSen  = "/.well-known/est/sen"
	pathCrts = "/.well-known/est/crts"
)

// Config tunes a pledge.
type Config struct {
	// Listen opens the datagram socket for one session (discovery, or one
	// DTLS association: a client owns its socket and closes it with the
	// association, so a reconnect uses a new one, as a device re-binding
	// its UDP port would). Required.
	Listen func() (net.PacketConn, error)
	// Rand is the source of nonces and keys (default crypto/rand).
	Rand io.Reader
	// Now is the device clock (default time.Now).
	Now func() time.Time
	// Log receives per-step events.
	Log zerolog.Logger
	// MTU for DTLS (default 1024, cBRSKI's assumed PMTU).
	MTU int
	// Transmission are the CoAP retransmission parameters (zero: RFC 7252's
	// defaults).
	Transmission coap.Transmission
	// HandshakeTimeout bounds one DTLS handshake.
	HandshakeTimeout time.Duration
	// FlightInterval is the DTLS retransmission interval.
	FlightInterval time.Duration
	// Attempts bounds how often a step is retried after a broken session
	// or a 5.03 (default 4).
	Attempts int
	// RetryWait is the pause before a retry (default 1 s; a 5.03's
	// Max-Age would be honoured by a device that has one).
	RetryWait time.Duration
	// OnStep, if set, is called after every attempt of a step ("voucher",
	// "voucher-status", "enroll", "enroll-status") with its outcome.
	OnStep func(step string, err error)
}

// Pledge onboards one device.
type Pledge struct {
	id  Identity
	cfg Config
}

// New returns a pledge for id.
func New(id Identity, cfg Config) (*Pledge, error) {
	if err := id.Check(); err != nil {
		return nil, err
	}
	if cfg.Listen == nil {
		return nil, fmt.Errorf("%w: Config.Listen is required", ErrIdentity)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1024
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = time.Second
	}
	return &Pledge{id: id, cfg: cfg}, nil
}

func (p *Pledge) clientOptions() []coap.ClientOption {
	opts := []coap.ClientOption{coap.WithClientLogger(p.cfg.Log)}
	if p.cfg.Transmission != (coap.Transmission{}) {
		opts = append(opts, coap.WithTransmission(p.cfg.Transmission))
	}
	return opts
}

// Serial is the pledge's serial number.
func (p *Pledge) Serial() string { return p.id.IDevID().Subject.SerialNumber }

// Discover asks addr (a registrar, or a join proxy; in a deployment the
// link-local multicast ff02::fd) for a join port with the cBRSKI -31
// discovery query and returns the CoAPS address to use: the responder's
// address with the advertised port (the first one, if several).
func (p *Pledge) Discover(ctx context.Context, addr net.Addr) (net.Addr, error) {
	pc, err := p.cfg.Listen()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	c, err := coap.DialUDP(ctx, pc, addr, p.clientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	defer c.Close()
	resp, err := c.Do(ctx, &coap.Request{Method: codes.GET, Path: coap.WellKnownCore, Query: []string{"brski-jp=*"},
		ContentFormat: coap.FormatNone, Accept: coap.FormatNone})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	if resp.Code != codes.Content {
		return nil, fmt.Errorf("%w: %s", ErrDiscovery, coap.Dotted(resp.Code))
	}
	port, ok := joinPort(string(resp.Payload))
	if !ok {
		return nil, fmt.Errorf("%w: no brski-jp link in %q", ErrDiscovery, resp.Payload)
	}
	return withPort(addr, port)
}

// joinPort finds the first brski-jp target attribute in a link-format
// document ("<>;brski-jp=5684" or with a quoted value).
func joinPort(links string) (int, bool) {
	for _, link := range strings.Split(links, ",") {
		for _, attr := range strings.Split(link, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(attr), "=")
			if !ok || k != "brski-jp" {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(v, `"`))
			if err == nil && n > 0 && n < 65536 {
				return n, true
			}
		}
	}
	return 0, false
}

func withPort(addr net.Addr, port int) (net.Addr, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return &net.UDPAddr{IP: a.IP, Port: port, Zone: a.Zone}, nil
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	return portAddr{network: addr.Network(), addr: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// portAddr is a net.Addr for links whose addresses are host:port strings
// (the simulated radio).
type portAddr struct{ network, addr string }

func (a portAddr) Network() string { return a.network }
func (a portAddr) String() string  { return a.addr }

// Timings records how long each step took.
type Timings struct {
	Handshake, Voucher, Enroll, Total time.Duration
	// Reconnects counts DTLS sessions re-established after a failure.
	Reconnects int
}

// session is one DTLS association with the registrar.
type session struct {
	c     *coap.Client
	chain []*x509.Certificate
}

// Onboard runs cBRSKI against the registrar at addr and returns
// the enrollment. A session that breaks is re-established with the same
// IDevID and the pledge continues where it was; after the voucher, the new
// session is authenticated against the pinned domain CA rather than
// accepted provisionally.
func (p *Pledge) Onboard(ctx context.Context, addr net.Addr) (*Enrollment, Timings, error) {
	var t Timings
	start := p.cfg.Now()
	o := &onboarding{p: p, addr: addr, t: &t}
	defer o.close()
	err := o.run(ctx)
	t.Total = p.cfg.Now().Sub(start)
	if err != nil {
		return nil, t, err
	}
	return o.enrollment, t, nil
}

// onboarding is the state of one run.
type onboarding struct {
	p    *Pledge
	addr net.Addr
	t    *Timings

	s          *session
	pinned     *x509.Certificate // the domain CA from the voucher
	nonce      []byte
	pvr        []byte
	voucher    []byte
	registrar  []*x509.Certificate
	enrollment *Enrollment
}

func (o *onboarding) close() {
	if o.s != nil {
		o.s.c.Close()
		o.s = nil
	}
}

func (o *onboarding) run(ctx context.Context) error {
	steps := []struct {
		name string
		fn   func(context.Context) error
		dur  *time.Duration
	}{
		{"voucher", o.requestVoucher, &o.t.Voucher},
		{"voucher-status", o.voucherStatus, nil},
		{"enroll", o.enroll, &o.t.Enroll},
		{"enroll-status", o.enrollStatus, nil},
	}
	for _, st := range steps {
		var err error
		for attempt := 1; ; attempt++ {
			if err = o.connect(ctx); err == nil {
				t0 := o.p.cfg.Now()
				err = st.fn(ctx)
				if st.dur != nil {
					*st.dur += o.p.cfg.Now().Sub(t0)
				}
			}
			if o.p.cfg.OnStep != nil {
				o.p.cfg.OnStep(st.name, err)
			}
			if err == nil {
				break
			}
			var se *StepError
			if !errors.As(err, &se) {
				se = &StepError{Step: st.name, Err: err}
				err = se
			}
			if se.Step == "" {
				se.Step = st.name
			}
			if !se.retryable() || attempt >= o.p.cfg.Attempts || ctx.Err() != nil {
				if errors.Is(err, ErrVoucher) && st.name == "voucher" {
					o.reportFailure(ctx, pathVS, err)
				} else if errors.Is(err, ErrEnroll) {
					o.reportFailure(ctx, pathES, err)
				}
				return err
			}
			o.p.cfg.Log.Debug().Err(err).Str("step", st.name).Int("attempt", attempt).Msg("retrying")
			if se.Code == 0 {
				// A transport failure: the session is gone.
				o.close()
			}
			select {
			case <-time.After(o.p.cfg.RetryWait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// connect (re-)establishes the DTLS session with the IDevID. Before the
// voucher the registrar's certificate is accepted provisionally; after it,
// the registrar must chain to the pinned domain CA.
func (o *onboarding) connect(ctx context.Context) error {
	if o.s != nil {
		return nil
	}
	cert := tls.Certificate{PrivateKey: o.p.id.Key, Leaf: o.p.id.IDevID()}
	for _, c := range o.p.id.Chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	cfg := coap.ClientDTLSConfig{Certificate: cert, MTU: o.p.cfg.MTU, HandshakeTimeout: o.p.cfg.HandshakeTimeout, FlightInterval: o.p.cfg.FlightInterval}
	if o.pinned != nil {
		pool := x509.NewCertPool()
		pool.AddCert(o.pinned)
		cfg.RootCAs = pool
	} else {
		cfg.InsecureSkipVerify = true
	}
	pc, err := o.p.cfg.Listen()
	if err != nil {
		return &StepError{Step: "dtls", Err: err}
	}
	t0 := o.p.cfg.Now()
	c, err := coap.DialDTLS(ctx, pc, o.addr, cfg, o.p.clientOptions()...)
	o.t.Handshake += o.p.cfg.Now().Sub(t0)
	if err != nil {
		return &StepError{Step: "dtls", Err: err}
	}
	if o.s == nil && o.registrar != nil {
		o.t.Reconnects++
	}
	o.s = &session{c: c, chain: c.PeerChain()}
	if len(o.s.chain) == 0 {
		o.close()
		return &StepError{Step: "dtls", Err: errors.New("registrar presented no certificate")}
	}
	if o.registrar == nil {
		o.registrar = o.s.chain
	}
	return nil
}

// post sends a request and turns a non-success code into a StepError.
func (o *onboarding) post(ctx context.Context, step, path string, format int, payload []byte, accept int) (*coap.Response, error) {
	resp, err := o.s.c.Post(ctx, path, format, payload, accept)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	if resp.Code>>5 != 2 {
		return nil, &StepError{Step: step, Code: resp.Code, Diagnostic: string(resp.Payload), Err: ErrRefused}
	}
	return resp, nil
}

// requestVoucher builds and signs the PVR (proximity assertion, fresh
// nonce, the registrar's public key as seen in DTLS: the draft's example
// and OpenThread's pledge send proximity-registrar-pubk, 91 bytes, which
// keeps the PVR in one CoAP block), sends it to /rv and
// validates the voucher: MASA signature against the manufacturer trust
// anchor, the pledge checks of rfc8366bis, then the registrar certificate
// against the pin. Only then does the session stop being provisional.
func (o *onboarding) requestVoucher(ctx context.Context) error {
	if o.nonce == nil || o.pvr == nil {
		o.nonce = make([]byte, 8) // OpenThread's length; 8..32 allowed
		if _, err := io.ReadFull(o.p.cfg.Rand, o.nonce); err != nil {
			return err
		}
		proximity := voucher.Proximity
		r := &voucher.Request{
			Assertion:              &proximity,
			CreatedOn:              o.p.cfg.Now().UTC().Truncate(time.Second),
			Nonce:                  o.nonce,
			SerialNumber:           o.p.Serial(),
			ProximityRegistrarPubK: o.s.chain[0].RawSubjectPublicKeyInfo,
		}
		pvr, err := voucher.SignRequest(o.p.cfg.Rand, o.p.id.Key, r, nil)
		if err != nil {
			return err
		}
		o.pvr = pvr
	}
	resp, err := o.post(ctx, "voucher", pathRV, coap.FormatVoucherCOSE, o.pvr, coap.FormatVoucherCOSE)
	if err != nil {
		// A new session may reach a registrar with another certificate:
		// build a fresh PVR on retry.
		o.pvr = nil
		return err
	}
	if resp.ContentFormat != coap.FormatVoucherCOSE && resp.ContentFormat != coap.FormatCOSESign1 {
		return &StepError{Step: "voucher", Err: fmt.Errorf("%w: content format %d", ErrVoucher, resp.ContentFormat)}
	}
	sv, err := voucher.ParseSignedVoucher(resp.Payload)
	if err != nil {
		return &StepError{Step: "voucher", Err: fmt.Errorf("%w: %w", ErrVoucher, err)}
	}
	if err := sv.Verify(o.p.id.Manufacturer.PublicKey); err != nil {
		return &StepError{Step: "voucher", Err: fmt.Errorf("%w: %w", ErrVoucher, err)}
	}
	if err := sv.Voucher.Validate(voucher.PledgeCheck{
		SerialNumber: o.p.Serial(),
		Nonce:        o.nonce,
		IDevIDIssuer: voucher.IDevIDIssuer(o.p.id.IDevID()),
		Now:          o.p.cfg.Now(),
	}); err != nil {
		return &StepError{Step: "voucher", Err: fmt.Errorf("%w: %w", ErrVoucher, err)}
	}
	if err := voucher.VerifyRegistrarPinned(sv.Voucher, o.s.chain, o.p.cfg.Now()); err != nil {
		return &StepError{Step: "voucher", Err: fmt.Errorf("%w: %w", ErrVoucher, err)}
	}
	pinned, err := sv.Voucher.PinnedCert()
	if err != nil {
		return &StepError{Step: "voucher", Err: fmt.Errorf("%w: %w", ErrVoucher, err)}
	}
	o.pinned, o.voucher = pinned, resp.Payload
	o.p.cfg.Log.Debug().Str("serial", o.p.Serial()).Msg("voucher accepted")
	return nil
}

func (o *onboarding) voucherStatus(ctx context.Context) error {
	b, err := (&voucher.Status{Version: 1, Status: true}).MarshalCBOR()
	if err != nil {
		return err
	}
	_, err = o.post(ctx, "voucher-status", pathVS, coap.FormatCBOR, b, coap.FormatNone)
	return err
}

// enroll is the optimised EST procedure of cBRSKI -31 §"Pledge Enrollment
// Procedure": /sen with a CSR carrying the IDevID subject; /crts only if
// the pinned CA did not itself sign the LDevID.
func (o *onboarding) enroll(ctx context.Context) error {
	key, err := pki.GenerateKey(o.p.cfg.Rand)
	if err != nil {
		return err
	}
	csr, err := est.NewCSR(o.p.cfg.Rand, key, o.p.id.IDevID().Subject)
	if err != nil {
		return err
	}
	resp, err := o.post(ctx, "enroll", pathSen, coap.FormatPKCS10, csr, coap.FormatPKIXCert)
	if err != nil {
		return err
	}
	certs, err := est.ParseCerts(resp.ContentFormat, resp.Payload)
	if err != nil {
		return &StepError{Step: "enroll", Err: fmt.Errorf("%w: %w", ErrEnroll, err)}
	}
	ldevid := certs[0]
	if !pubEqual(ldevid.PublicKey, key.Public()) {
		return &StepError{Step: "enroll", Err: fmt.Errorf("%w: certificate is not for our key", ErrEnroll)}
	}
	if ldevid.Subject.SerialNumber != o.p.Serial() {
		return &StepError{Step: "enroll", Err: fmt.Errorf("%w: certificate serialNumber %q", ErrEnroll, ldevid.Subject.SerialNumber)}
	}
	cas := []*x509.Certificate{o.pinned}
	if ldevid.CheckSignatureFrom(o.pinned) != nil {
		resp, err := o.s.c.Get(ctx, pathCrts, coap.FormatMultipartCore)
		if err != nil {
			return &StepError{Step: "enroll", Err: err}
		}
		if resp.Code != codes.Content {
			return &StepError{Step: "enroll", Code: resp.Code, Diagnostic: string(resp.Payload), Err: ErrRefused}
		}
		if cas, err = est.ParseCerts(resp.ContentFormat, resp.Payload); err != nil {
			return &StepError{Step: "enroll", Err: fmt.Errorf("%w: %w", ErrEnroll, err)}
		}
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(o.pinned)
	for _, c := range cas {
		inter.AddCert(c)
	}
	if _, err := ldevid.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: o.p.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return &StepError{Step: "enroll", Err: fmt.Errorf("%w: %w", ErrEnroll, err)}
	}
	o.enrollment = &Enrollment{LDevID: ldevid, Key: key, DomainCAs: cas, Registrar: o.registrar, PVR: o.pvr, Voucher: o.voucher}
	return nil
}

func (o *onboarding) enrollStatus(ctx context.Context) error {
	b, err := (&voucher.Status{Version: 1, Status: true}).MarshalCBOR()
	if err != nil {
		return err
	}
	_, err = o.post(ctx, "enroll-status", pathES, coap.FormatCBOR, b, coap.FormatNone)
	return err
}

// reportFailure tells the registrar why the pledge gave up (best effort:
// RFC 8995 §5.7, §5.9.4).
func (o *onboarding) reportFailure(ctx context.Context, path string, cause error) {
	if o.s == nil {
		return
	}
	reason := cause.Error()
	if len(reason) > 200 {
		reason = reason[:200]
	}
	b, err := (&voucher.Status{Version: 1, Status: false, Reason: reason}).MarshalCBOR()
	if err != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	o.s.c.Post(rctx, path, coap.FormatCBOR, b, coap.FormatNone)
}

func pubEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
