// Package masa is Tumbler's lab MASA (Manufacturer Authorized Signing
// Authority, RFC 8995 §5.5) and manufacturer CA. It issues IDevIDs that
// carry its URL (id-pe-masa-url), answers registrar voucher-requests over
// HTTPS with COSE-signed constrained vouchers
// (draft-ietf-anima-constrained-voucher-31), tracks which domain owns each
// device, and keeps the audit log of RFC 8995 §5.8.
//
// It is a lab MASA: real protocol and real cryptography, with a policy a
// manufacturer would replace (first domain to claim a device owns it).
package masa

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/pki"
)

// Paths served (RFC 8995 §5.5, §5.8).
const (
	PathRequestVoucher  = "/.well-known/brski/requestvoucher"
	PathRequestAuditLog = "/.well-known/brski/requestauditlog"
)

// MaxRequest caps a voucher-request body (an RVR with a two-chain x5bag is
// about 2.5 KiB).
const MaxRequest = 64 << 10

// Policy decides which domain may claim a device.
type Policy string

// Ownership policies.
const (
	// FirstClaim: the first domain to obtain a voucher owns the device;
	// other domains are refused until ownership is transferred.
	FirstClaim Policy = "first-claim"
	// AnyDomain: every authenticated registrar gets a voucher (lab use).
	AnyDomain Policy = "any"
)

// MASA is the lab MASA.
type MASA struct {
	ca      *x509.Certificate
	caKey   crypto.Signer
	url     string
	policy  Policy
	audit   *auditLog
	now     func() time.Time
	rand    io.Reader
	log     zerolog.Logger
	nonceTT time.Duration

	// verified caches registrar chains already checked (by SHA-256 of the
	// signer and pinned certificates); bounded.
	mu       sync.Mutex
	verified map[[32]byte]bool

	// Ownership changes (ownership.go).
	labelKey    []byte
	own         *ownership
	ownPath     string
	authorities []crypto.PublicKey
	notice      time.Duration
}

// Option configures New.
type Option func(*MASA) error

// WithClock sets the clock.
func WithClock(now func() time.Time) Option {
	return func(m *MASA) error { m.now = now; return nil }
}

// WithRand sets the randomness for signatures and keys.
func WithRand(r io.Reader) Option {
	return func(m *MASA) error { m.rand = r; return nil }
}

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(m *MASA) error { m.log = l.With().Str("component", "masa").Logger(); return nil }
}

// WithRecoveryAuthorities sets the keys whose repossession orders the MASA
// honours.
func WithRecoveryAuthorities(keys ...crypto.PublicKey) Option {
	return func(m *MASA) error { m.authorities = append(m.authorities, keys...); return nil }
}

// WithNotice sets how long a repossession claim waits for the owner to
// object (default DefaultNotice).
func WithNotice(d time.Duration) Option {
	return func(m *MASA) error {
		if d < 0 {
			return fmt.Errorf("masa: %w: negative notice period", ErrConfig)
		}
		m.notice = d
		return nil
	}
}

// WithOwnershipLog keeps transfer authorisations and repossession claims in
// this JSON-lines file (default: in memory).
func WithOwnershipLog(path string) Option {
	return func(m *MASA) error { m.ownPath = path; return nil }
}

// New builds a MASA from its manufacturer CA (which issues IDevIDs and signs
// vouchers, as in the cBRSKI draft's examples and OpenThread), the URL it
// writes into IDevIDs, the ownership policy and the audit-log path ("" keeps
// it in memory).
func New(ca *x509.Certificate, caKey crypto.Signer, url string, policy Policy, auditPath string, opts ...Option) (*MASA, error) {
	if ca == nil || caKey == nil || !ca.IsCA {
		return nil, fmt.Errorf("masa: %w: a manufacturer CA certificate and key are required", ErrConfig)
	}
	if !pubEqual(ca.PublicKey, caKey.Public()) {
		return nil, fmt.Errorf("masa: %w: CA key does not match the CA certificate", ErrConfig)
	}
	u, err := pki.NormalizeMASAURL(url)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: url: %v", ErrConfig, err)
	}
	switch policy {
	case "":
		policy = FirstClaim
	case FirstClaim, AnyDomain:
	default:
		return nil, fmt.Errorf("masa: %w: policy %q (want %q or %q)", ErrConfig, policy, FirstClaim, AnyDomain)
	}
	m := &MASA{ca: ca, caKey: caKey, url: u, policy: policy, now: time.Now, log: zerolog.Nop(),
		nonceTT: time.Hour, verified: make(map[[32]byte]bool), notice: DefaultNotice}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	if m.labelKey, err = labelKey(caKey); err != nil {
		return nil, err
	}
	if m.audit, err = openAudit(auditPath); err != nil {
		return nil, err
	}
	if m.own, err = openOwnership(m.ownPath); err != nil {
		m.audit.close()
		return nil, err
	}
	return m, nil
}

// Close releases the logs.
func (m *MASA) Close() error { return errors.Join(m.audit.close(), m.own.close()) }

// CA is the manufacturer CA: the trust anchor of IDevIDs and vouchers.
func (m *MASA) CA() *x509.Certificate { return m.ca }

// URL is the MASA URL written into IDevIDs.
func (m *MASA) URL() string { return m.url }

// IssueIDevID creates a device key and an IDevID for serial, carrying this
// MASA's URL.
func (m *MASA) IssueIDevID(serial string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := pki.GenerateKey(m.rand)
	if err != nil {
		return nil, nil, err
	}
	cert, err := pki.NewIDevID(m.now(), &pki.Issuer{Cert: m.ca, Key: m.caKey}, key.Public(),
		pki.IDevIDProfile{Profile: pki.Profile{Rand: m.rand}, SerialNumber: serial, MASAURL: m.url})
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// Audit returns the audit log of a device.
func (m *MASA) Audit(serial string) []Event { return m.audit.list(serial) }

// registrarRequest is an authenticated, validated registrar voucher-request.
type registrarRequest struct {
	rvr      *voucher.Request
	pvr      *voucher.Request
	idevid   *x509.Certificate
	pin      *x509.Certificate // the domain CA to pin
	domainID string
}

// RequestVoucher processes a signed registrar voucher-request (RFC 8995
// §5.5) received over TLS from a client presenting clientCert, and returns
// the signed voucher. Errors wrap the sentinels in errors.go.
func (m *MASA) RequestVoucher(ctx context.Context, body []byte, clientCert *x509.Certificate) ([]byte, error) {
	rr, err := m.authenticate(body, clientCert)
	if err != nil {
		return nil, err
	}
	serial := rr.rvr.SerialNumber
	now := m.now().UTC()
	v := &voucher.Voucher{
		CreatedOn:                  now,
		SerialNumber:               serial,
		PinnedDomainCert:           rr.pin.Raw,
		DomainCertRevocationChecks: new(bool), // false: constrained pledges rarely can check
	}
	assertion := voucher.Logged
	if a := rr.pvr.Assertion; a != nil && *a == voucher.Proximity {
		assertion = voucher.Proximity
	}
	v.Assertion = &assertion
	var nonce *string
	if len(rr.rvr.Nonce) > 0 {
		v.Nonce = rr.rvr.Nonce
		s := base64.StdEncoding.EncodeToString(rr.rvr.Nonce)
		nonce = &s
	} else {
		// RFC 8366bis: a nonceless voucher needs expires-on, and it may
		// not outlive the pinned certificate.
		exp := now.Add(m.nonceTT)
		if exp.After(rr.pin.NotAfter) {
			exp = rr.pin.NotAfter
		}
		v.ExpiresOn = exp
	}
	signed, err := voucher.SignVoucher(m.rand, m.caKey, v, [][]byte{m.ca.Raw})
	if err != nil {
		return nil, fmt.Errorf("masa: sign voucher: %w", err)
	}
	// The voucher is released only once the audit log holds it; under
	// first-claim, the ownership check and the new entry are one step. A
	// device owned by another domain goes to this one only against a
	// transfer authorisation from the owner or a matured repossession
	// claim, each used once.
	newOwner := transfer.SPKIHash(rr.pin)
	var grantKind string
	var g *grant
	err = m.audit.claim(Event{Serial: serial, Date: now, DomainID: rr.domainID, Nonce: nonce, Assertion: assertion.String()},
		func(prev []Event) error {
			if m.policy != FirstClaim || len(prev) == 0 || prev[len(prev)-1].DomainID == rr.domainID {
				return nil
			}
			dev := pki.DeviceID(rr.idevid)
			grantKind, g = m.own.grantFor(serial, hex.EncodeToString(dev[:]), hex.EncodeToString(newOwner[:]), now)
			if g == nil {
				return fmt.Errorf("masa: %w: %s, and no transfer authorization or repossession claim for this domain", ErrOwned, serial)
			}
			return m.own.use(grantKind, serial, g, now)
		})
	if err != nil {
		return nil, err
	}
	if g != nil {
		m.log.Info().Str("serial", serial).Str("domain", rr.domainID).Str("by", grantKind).Msg("ownership changed")
	}
	m.log.Info().Str("serial", serial).Str("domain", rr.domainID).Str("assertion", assertion.String()).Msg("voucher issued")
	return signed, nil
}

// AuditLog answers RFC 8995 §5.8: the same signed registrar voucher-request,
// answered with the device's audit log, to a domain that the log already
// names (a registrar may not learn the history of devices it never held).
func (m *MASA) AuditLog(ctx context.Context, body []byte, clientCert *x509.Certificate) ([]Event, error) {
	rr, err := m.authenticate(body, clientCert)
	if err != nil {
		return nil, err
	}
	ev := m.audit.list(rr.rvr.SerialNumber)
	for _, e := range ev {
		if e.DomainID == rr.domainID {
			return ev, nil
		}
	}
	return nil, fmt.Errorf("masa: %w: domain has no voucher for %s", ErrOwned, rr.rvr.SerialNumber)
}

// authenticate checks everything about a registrar voucher-request that does
// not depend on ownership: the registrar's signature and chain, the TLS
// binding, the pledge's IDevID and its signed request, and the consistency
// rules of spec §3.4.
func (m *MASA) authenticate(body []byte, clientCert *x509.Certificate) (*registrarRequest, error) {
	if len(body) > MaxRequest {
		return nil, fmt.Errorf("masa: %w: %d bytes", ErrMalformed, len(body))
	}
	sr, err := voucher.ParseSignedRequest(body)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrMalformed, err)
	}
	bag, err := sr.Sign1.X5Bag()
	if err != nil || len(bag) == 0 {
		return nil, fmt.Errorf("masa: %w: no x5bag", ErrRegistrar)
	}
	signer, pin, err := m.registrarChain(sr, bag)
	if err != nil {
		return nil, err
	}
	if clientCert == nil || !pubEqual(clientCert.PublicKey, signer.PublicKey) {
		return nil, fmt.Errorf("masa: %w: TLS client certificate is not the voucher-request signer", ErrRegistrar)
	}
	rvr := sr.Request
	if len(rvr.PriorSignedVoucherRequest) == 0 {
		return nil, fmt.Errorf("masa: %w: no prior-signed-voucher-request", ErrPledge)
	}
	idevid := m.findIDevID(bag, rvr.SerialNumber)
	if idevid == nil {
		return nil, fmt.Errorf("masa: %w: serial %q", ErrUnknownDevice, rvr.SerialNumber)
	}
	psr, err := voucher.ParseSignedRequest(rvr.PriorSignedVoucherRequest)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrPledge, err)
	}
	if err := psr.Sign1.Verify(idevid.PublicKey); err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrPledge, err)
	}
	if err := voucher.ValidateRVR(rvr, psr.Request, idevid, m.now()); err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrPledge, err)
	}
	id, err := domainID(pin)
	if err != nil {
		return nil, err
	}
	return &registrarRequest{rvr: rvr, pvr: psr.Request, idevid: idevid, pin: pin, domainID: id}, nil
}

// registrarChain finds the certificate with id-kp-cmcRA that signed the
// request, checks it chains within the x5bag to a self-signed domain CA, and
// returns it with the certificate to pin: the lowest CA in the chain, per
// the MASA pinning policy for nonced vouchers (cBRSKI -31 §"MASA Pinning
// Policy"), or the registrar certificate itself if it is self-signed.
func (m *MASA) registrarChain(sr *voucher.SignedRequest, bag []*x509.Certificate) (signer, pin *x509.Certificate, err error) {
	for _, c := range bag {
		if !pki.HasCmcRA(c) {
			continue
		}
		if sr.Sign1.Verify(c.PublicKey) == nil {
			signer = c
			break
		}
	}
	if signer == nil {
		return nil, nil, fmt.Errorf("masa: %w: no cmcRA certificate in the x5bag verifies the signature", ErrRegistrar)
	}
	now := m.now()
	if now.Before(signer.NotBefore) || now.After(signer.NotAfter) {
		return nil, nil, fmt.Errorf("masa: %w: registrar certificate not valid now", ErrRegistrar)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range bag {
		if !c.IsCA || c == signer {
			continue
		}
		if isSelfSigned(c) {
			roots.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	if isSelfSigned(signer) {
		return signer, signer, nil
	}
	for _, c := range bag {
		if c.IsCA && signer.CheckSignatureFrom(c) == nil {
			pin = c
			break
		}
	}
	if pin == nil {
		return nil, nil, fmt.Errorf("masa: %w: registrar certificate's issuer is not in the x5bag", ErrRegistrar)
	}
	key := sha256.Sum256(append(append([]byte{}, signer.Raw...), pin.Raw...))
	m.mu.Lock()
	ok := m.verified[key]
	m.mu.Unlock()
	if ok {
		return signer, pin, nil
	}
	if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, fmt.Errorf("masa: %w: %w", ErrRegistrar, err)
	}
	m.mu.Lock()
	if len(m.verified) > 4096 {
		clear(m.verified)
	}
	m.verified[key] = true
	m.mu.Unlock()
	return signer, pin, nil
}

// findIDevID returns the certificate in the x5bag that this manufacturer
// issued for serial (cBRSKI -30+: the registrar adds the pledge's chain).
func (m *MASA) findIDevID(bag []*x509.Certificate, serial string) *x509.Certificate {
	for _, c := range bag {
		if c.IsCA || c.Subject.SerialNumber != serial {
			continue
		}
		if len(c.AuthorityKeyId) != 0 && string(c.AuthorityKeyId) != string(m.ca.SubjectKeyId) {
			continue
		}
		if c.CheckSignatureFrom(m.ca) == nil {
			return c
		}
	}
	return nil
}

// domainID names a domain in the audit log (RFC 8995 §5.8.2): the base64
// key identifier of its pinned CA (RFC 5280 §4.2.1.2 method 1).
func domainID(pin *x509.Certificate) (string, error) {
	skid, err := pki.SubjectKeyID(pin.PublicKey)
	if err != nil {
		return "", fmt.Errorf("masa: %w: %w", ErrRegistrar, err)
	}
	return base64.StdEncoding.EncodeToString(skid), nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func pubEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// ServeTLS serves the MASA's HTTPS API on ln until ctx ends. The server asks
// for any client certificate: registrars are authenticated by the binding of
// their TLS certificate to the signer of their voucher-request, not by a CA
// the MASA would have to know in advance.
func (m *MASA) ServeTLS(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAnyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		ErrorLog: nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		<-errc
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
