package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/pki"
)

// EST-coaps resource paths under the default root resource (RFC 9148 §5.1,
// Table 1).
const (
	PathBase = "/.well-known/est"
	PathCrts = PathBase + "/crts"
	PathSen  = PathBase + "/sen"
	PathSren = PathBase + "/sren"
	PathAtt  = PathBase + "/att"
)

// CA is the issuing certificate authority of the domain.
type CA struct {
	// Cert is the issuing CA certificate; it signs every LDevID.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
	// Chain is the CA hierarchy served on /crts: the issuing CA first, then
	// each issuer up to (and usually including) the root. Empty means
	// Cert alone. If non-empty, Chain[0] must be Cert.
	Chain []*x509.Certificate
}

// representation is a precomputed /crts or /att answer.
type representation struct {
	format  int
	payload []byte
	etag    []byte
}

// Server is an EST-coaps server (RFC 9148) for the domain CA: /crts, /sen,
// /sren and /att as coap handlers. It keeps no per-request state; all of it
// lives with the Authorizer and the Recorder. It is safe for concurrent use.
type Server struct {
	ca       CA
	caSKI    []byte
	log      zerolog.Logger
	now      func() time.Time
	rand     io.Reader
	validity time.Duration
	authz    Authorizer
	rec      Recorder
	tmpl     func(*x509.Certificate)
	reg      prometheus.Registerer
	metrics  *metrics // nil without WithMetrics

	crts map[int]representation // by Accept; FormatNone maps to 287
	att  representation
}

// NewServer validates ca and the options and precomputes the /crts and /att
// representations. WithAuthorizer and WithRecorder are required.
func NewServer(ca CA, opts ...Option) (*Server, error) {
	s := &Server{
		log:      zerolog.Nop(),
		now:      time.Now,
		rand:     rand.Reader,
		validity: DefaultValidity,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.authz == nil {
		return nil, fmt.Errorf("%w: WithAuthorizer is required", ErrConfig)
	}
	if s.rec == nil {
		return nil, fmt.Errorf("%w: WithRecorder is required", ErrConfig)
	}
	if err := s.setCA(ca); err != nil {
		return nil, err
	}
	if err := s.precompute(); err != nil {
		return nil, err
	}
	if s.reg != nil {
		m := newMetrics()
		if err := m.register(s.reg); err != nil {
			return nil, fmt.Errorf("%w: metrics: %v", ErrConfig, err)
		}
		s.metrics = m
	}
	return s, nil
}

func (s *Server) setCA(ca CA) error {
	if ca.Cert == nil || ca.Key == nil {
		return fmt.Errorf("%w: CA needs Cert and Key", ErrConfig)
	}
	if !ca.Cert.IsCA || (ca.Cert.KeyUsage != 0 && ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return fmt.Errorf("%w: CA certificate %q may not sign certificates", ErrConfig, ca.Cert.Subject)
	}
	pub, ok := ca.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.Cert.PublicKey) {
		return fmt.Errorf("%w: CA key does not match the CA certificate", ErrConfig)
	}
	if now := s.now(); !now.Before(ca.Cert.NotAfter) {
		return fmt.Errorf("%w: CA certificate expired %v", ErrConfig, ca.Cert.NotAfter)
	}
	if len(ca.Chain) == 0 {
		ca.Chain = []*x509.Certificate{ca.Cert}
	}
	ca.Chain = append([]*x509.Certificate(nil), ca.Chain...)
	if !ca.Chain[0].Equal(ca.Cert) {
		return fmt.Errorf("%w: Chain[0] must be the issuing CA", ErrConfig)
	}
	if len(ca.Chain) > MaxCerts {
		return fmt.Errorf("%w: %d CA certificates (max %d)", ErrConfig, len(ca.Chain), MaxCerts)
	}
	for i := 0; i+1 < len(ca.Chain); i++ {
		if err := ca.Chain[i].CheckSignatureFrom(ca.Chain[i+1]); err != nil {
			return fmt.Errorf("%w: Chain[%d] is not issued by Chain[%d]: %v", ErrConfig, i, i+1, err)
		}
	}
	s.caSKI = ca.Cert.SubjectKeyId
	if len(s.caSKI) == 0 {
		ski, err := pki.SubjectKeyID(ca.Cert.PublicKey)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		s.caSKI = ski
	}
	s.ca = ca
	return nil
}

func (s *Server) precompute() error {
	parts := make([]part, len(s.ca.Chain))
	for i, c := range s.ca.Chain {
		parts[i] = part{format: coap.FormatPKIXCert, data: c.Raw}
	}
	mp, err := encodeMultipart(parts)
	if err != nil {
		return fmt.Errorf("%w: /crts multipart: %v", ErrConfig, err)
	}
	p7, err := certsOnly(s.ca.Chain...)
	if err != nil {
		return fmt.Errorf("%w: /crts pkcs7: %v", ErrConfig, err)
	}
	if len(mp) > MaxCertsSize || len(p7) > MaxCertsSize {
		return fmt.Errorf("%w: /crts representation over %d bytes", ErrConfig, MaxCertsSize)
	}
	one := withETag(representation{format: coap.FormatPKIXCert, payload: s.ca.Cert.Raw})
	s.crts = map[int]representation{
		coap.FormatNone:           one,
		coap.FormatPKIXCert:       one,
		coap.FormatMultipartCore:  withETag(representation{format: coap.FormatMultipartCore, payload: mp}),
		coap.FormatPKCS7CertsOnly: withETag(representation{format: coap.FormatPKCS7CertsOnly, payload: p7}),
	}
	att, err := DefaultCSRAttrs().Marshal()
	if err != nil {
		return fmt.Errorf("%w: /att: %v", ErrConfig, err)
	}
	s.att = representation{format: coap.FormatCSRAttrs, payload: att}
	return nil
}

// withETag sets the entity tag of a representation: the first 8 bytes (the
// RFC 7252 §5.10.6 maximum) of SHA-256 over its Content-Format and payload.
// It is stable across restarts for the same CA set and differs between
// formats.
func withETag(r representation) representation {
	h := sha256.New()
	h.Write([]byte{byte(r.format >> 8), byte(r.format)})
	h.Write(r.payload)
	r.etag = h.Sum(nil)[:8]
	return r
}

// Register adds the EST-coaps resources to m with their RFC 6690 link
// attributes (RFC 9148 §5.1; cBRSKI -31 §"EST-coaps Resource Discovery"):
//
//	</.well-known/est>;rt=ace.est
//	</.well-known/est/crts>;rt=ace.est.crts;ct="62 281 287"   GET
//	</.well-known/est/sen>;rt=ace.est.sen;ct="281 287"        POST
//	</.well-known/est/sren>;rt=ace.est.sren;ct="281 287"      POST
//	</.well-known/est/att>;rt=ace.est.att;ct=285              GET
func (s *Server) Register(m *coap.Mux) {
	m.AddLink(PathBase, [2]string{"rt", "ace.est"})
	m.HandleFunc(PathCrts, s.serveCrts, coap.Link{Attrs: [][2]string{{"rt", "ace.est.crts"}, {"ct", "62 281 287"}}}, codes.GET)
	m.HandleFunc(PathSen, s.enrollHandler(Enroll), coap.Link{Attrs: [][2]string{{"rt", "ace.est.sen"}, {"ct", "281 287"}}}, codes.POST)
	m.HandleFunc(PathSren, s.enrollHandler(Reenroll), coap.Link{Attrs: [][2]string{{"rt", "ace.est.sren"}, {"ct", "281 287"}}}, codes.POST)
	m.HandleFunc(PathAtt, s.serveAtt, coap.Link{Attrs: [][2]string{{"rt", "ace.est.att"}, {"ct", "285"}}}, codes.GET)
}

// serveCrts answers GET /crts (RFC 9148 §4.1 via RFC 7030 §4.1; cBRSKI -31
// §"Multipart"): Accept none or 287 gives the issuing CA alone, 62 the CA
// hierarchy as 287 parts (issuing CA first), 281 the same in PKCS#7. The
// response carries an ETag; a request whose ETag matches gets 2.03 Valid
// with no payload (RFC 7252 §5.10.6, §5.9.1.3).
func (s *Server) serveCrts(_ context.Context, r *coap.Request) (*coap.Response, error) {
	if !r.Peer.Secure() {
		return nil, coap.Errorf(codes.Unauthorized, "client certificate required", ErrUnauthenticated)
	}
	rep, ok := s.crts[r.Accept]
	if !ok {
		return nil, coap.Errorf(codes.NotAcceptable, "crts formats: 62, 281, 287", fmt.Errorf("%w: accept %d", ErrAccept, r.Accept))
	}
	opts := message.Options{{ID: message.ETag, Value: rep.etag}}
	if etagMatches(r.Options, rep.etag) {
		return &coap.Response{Code: codes.Valid, ContentFormat: coap.FormatNone, Options: opts}, nil
	}
	return &coap.Response{Code: codes.Content, ContentFormat: rep.format, Payload: rep.payload, Options: opts}, nil
}

func etagMatches(opts message.Options, etag []byte) bool {
	for _, o := range opts {
		if o.ID == message.ETag && bytes.Equal(o.Value, etag) {
			return true
		}
	}
	return false
}

// serveAtt answers GET /att with DefaultCSRAttrs as application/csrattrs
// (285; RFC 9148 §5.3, RFC 7030 §4.5.2).
func (s *Server) serveAtt(_ context.Context, r *coap.Request) (*coap.Response, error) {
	if !r.Peer.Secure() {
		return nil, coap.Errorf(codes.Unauthorized, "client certificate required", ErrUnauthenticated)
	}
	if r.Accept != coap.FormatNone && r.Accept != coap.FormatCSRAttrs {
		return nil, coap.Errorf(codes.NotAcceptable, "att format: 285", fmt.Errorf("%w: accept %d", ErrAccept, r.Accept))
	}
	return coap.Content(s.att.format, s.att.payload), nil
}

// lockedReader serialises reads from a reader that may not be safe for
// concurrent use (a seeded test generator).
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
