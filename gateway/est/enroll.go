package est

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/pki"
)

// oidSerialNumber is the X.520 serialNumber attribute (2.5.4.5).
var oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}

// ubSerialNumber is ub-serial-number (RFC 5280 Appendix A.1).
const ubSerialNumber = 64

// backdate is how far before "now" an LDevID becomes valid, to absorb clock
// skew between the gateway and whoever verifies the certificate.
const backdate = time.Minute

func (s *Server) enrollHandler(op Op) func(context.Context, *coap.Request) (*coap.Response, error) {
	return func(ctx context.Context, r *coap.Request) (*coap.Response, error) {
		resp, cert, err := s.enroll(ctx, op, r)
		s.metrics.observe(op, err)
		if err != nil {
			code, diag := coap.CodeOf(err)
			s.log.Debug().Str("op", op.String()).Stringer("peer", r.Peer.Addr).
				Str("code", code.String()).Str("diag", diag).Err(err).Msg("enrollment refused")
			return nil, err
		}
		s.log.Info().Str("op", op.String()).Stringer("peer", r.Peer.Addr).
			Str("subject", cert.Subject.String()).Str("cert_serial", cert.SerialNumber.Text(16)).
			Time("not_after", cert.NotAfter).Msg("ldevid issued")
		return resp, nil
	}
}

// enroll handles /sen and /sren (RFC 9148 §4.2 via RFC 7030 §4.2). Checks
// run cheapest first and nothing is signed before the request, the CSR and
// the peer have all passed; nothing is answered before the Recorder
// succeeded.
func (s *Server) enroll(ctx context.Context, op Op, r *coap.Request) (*coap.Response, *x509.Certificate, error) {
	if !r.Peer.Secure() {
		return nil, nil, coap.Errorf(codes.Unauthorized, "client certificate required", ErrUnauthenticated)
	}
	if r.ContentFormat != coap.FormatPKCS10 {
		return nil, nil, coap.Errorf(codes.UnsupportedMediaType, "content-format must be 286 (pkcs10)",
			fmt.Errorf("%w: %d", ErrContentFormat, r.ContentFormat))
	}
	format := r.Accept
	switch format {
	case coap.FormatNone:
		format = coap.FormatPKIXCert // cBRSKI -31: 287 is the default
	case coap.FormatPKIXCert, coap.FormatPKCS7CertsOnly:
	default:
		return nil, nil, coap.Errorf(codes.NotAcceptable, "enroll formats: 281, 287", fmt.Errorf("%w: accept %d", ErrAccept, r.Accept))
	}
	if len(r.Payload) > MaxCSRSize {
		return nil, nil, coap.Errorf(codes.RequestEntityTooLarge, "csr too large",
			fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(r.Payload), MaxCSRSize))
	}
	csr, err := checkCSR(r.Payload)
	if err != nil {
		return nil, nil, err
	}

	id, err := s.authorize(ctx, r.Peer, op)
	if err != nil {
		return nil, nil, err
	}
	subject, err := enforceSerial(csr.RawSubject, id.Serial)
	if err != nil {
		return nil, nil, coap.Errorf(codes.BadRequest, "csr serial mismatch", err)
	}
	if op == Reenroll {
		current := r.Peer.Chain[0]
		same, err := sameName(subject, current.RawSubject)
		if err != nil {
			return nil, nil, coap.Errorf(codes.BadRequest, "malformed csr subject", fmt.Errorf("%w: %v", ErrBadCSR, err))
		}
		if !same {
			return nil, nil, coap.Errorf(codes.BadRequest, "csr subject differs from current certificate", ErrSubjectMismatch)
		}
		// Keep the subject byte-identical across renewals.
		subject = current.RawSubject
	}

	cert, err := s.issue(csr.PublicKey, subject)
	if err != nil {
		return nil, nil, coap.Errorf(codes.InternalServerError, "cannot issue", fmt.Errorf("%w: %v", ErrIssue, err))
	}
	payload := cert.Raw
	if format == coap.FormatPKCS7CertsOnly {
		if payload, err = certsOnly(cert); err != nil {
			return nil, nil, coap.Errorf(codes.InternalServerError, "cannot issue", fmt.Errorf("%w: pkcs7: %v", ErrIssue, err))
		}
	}
	if err := s.rec.RecordIssued(ctx, id, cert, op); err != nil {
		// Max-Age is absent, so the client retries after the default 60 s
		// (RFC 7252 §5.10.5; RFC 9148 §5.7).
		return nil, nil, coap.Errorf(codes.ServiceUnavailable, "enrollment not recorded, retry later", fmt.Errorf("%w: %w", ErrNotRecorded, err))
	}
	return coap.Changed(format, payload), cert, nil
}

// checkCSR parses a DER PKCS#10 request and checks its signature algorithm,
// key type and self-signature (proof of possession):
//
//	CertificationRequest ::= SEQUENCE {
//	     certificationRequestInfo CertificationRequestInfo,
//	     signatureAlgorithm AlgorithmIdentifier{{ SignatureAlgorithms }},
//	     signature          BIT STRING }
//
// RFC 2986 §4.2. Attributes and requested extensions are not used: the
// LDevID profile takes only the subject and the public key from a CSR.
func checkCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, coap.Errorf(codes.BadRequest, "empty csr", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, coap.Errorf(codes.BadRequest, "malformed csr", fmt.Errorf("%w: %v", ErrBadCSR, err))
	}
	if !acceptedCSRAlgorithms[csr.SignatureAlgorithm] {
		return nil, coap.Errorf(codes.BadRequest, "csr signature algorithm not accepted",
			fmt.Errorf("%w: %v", ErrCSRAlgorithm, csr.SignatureAlgorithm))
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, coap.Errorf(codes.BadRequest, "key type not accepted (P-256, Ed25519, RSA 2048-4096)", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, coap.Errorf(codes.BadRequest, "csr signature invalid", fmt.Errorf("%w: %v", ErrCSRSignature, err))
	}
	return csr, nil
}

// authorize asks the Authorizer and checks what it returns.
func (s *Server) authorize(ctx context.Context, peer coap.Peer, op Op) (Identity, error) {
	id, err := s.authz.Authorize(ctx, peer, op)
	if err != nil {
		var ce *coap.Error
		if errors.As(err, &ce) {
			return Identity{}, coap.Errorf(ce.Code(), ce.Diagnostic(), fmt.Errorf("%w: %w", ErrNotAuthorized, err))
		}
		return Identity{}, coap.Errorf(codes.Forbidden, "enrollment not authorized", fmt.Errorf("%w: %w", ErrNotAuthorized, err))
	}
	if id.Serial == "" || len(id.Serial) > ubSerialNumber || id.DeviceID == ([32]byte{}) {
		return Identity{}, coap.Errorf(codes.InternalServerError, "cannot issue",
			fmt.Errorf("%w: authorizer returned an identity without device id or with serial %q", ErrIssue, id.Serial))
	}
	return id, nil
}

// atv is an AttributeTypeAndValue with its value kept raw (RFC 5280 §4.1.2.4).
type atv struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rdns splits a DER Name into its RelativeDistinguishedNames.
//
//	Name ::= CHOICE { rdnSequence RDNSequence }
//	RDNSequence ::= SEQUENCE OF RelativeDistinguishedName
//	RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
//
// RFC 5280 §4.1.2.4.
func rdns(name []byte) ([]asn1.RawValue, [][]atv, error) {
	var seq []asn1.RawValue
	rest, err := asn1.Unmarshal(name, &seq)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) != 0 {
		return nil, nil, errors.New("trailing data after name")
	}
	out := make([][]atv, len(seq))
	for i, rdn := range seq {
		rest, err := asn1.UnmarshalWithParams(rdn.FullBytes, &out[i], "set")
		if err != nil {
			return nil, nil, err
		}
		if len(rest) != 0 || len(out[i]) == 0 {
			return nil, nil, errors.New("bad relative distinguished name")
		}
	}
	return seq, out, nil
}

// enforceSerial returns the subject of the LDevID: the CSR subject as sent,
// with serialNumber set to serial. A CSR without serialNumber gets one
// appended as a last RDN; a CSR whose serialNumber differs is refused.
func enforceSerial(subject []byte, serial string) ([]byte, error) {
	seq, sets, err := rdns(subject)
	if err != nil {
		return nil, fmt.Errorf("%w: subject: %v", ErrBadCSR, err)
	}
	found := false
	for _, set := range sets {
		for _, a := range set {
			if !a.Type.Equal(oidSerialNumber) {
				continue
			}
			var v string
			if _, err := asn1.Unmarshal(a.Value.FullBytes, &v); err != nil || v != serial {
				return nil, fmt.Errorf("%w: csr has %q, peer is %q", ErrSerialMismatch, v, serial)
			}
			found = true
		}
	}
	if found {
		return subject, nil
	}
	rdn, err := asn1.MarshalWithParams([]pkix.AttributeTypeAndValue{{Type: oidSerialNumber, Value: serial}}, "set")
	if err != nil {
		return nil, fmt.Errorf("%w: serial %q: %v", ErrIssue, serial, err)
	}
	var body []byte
	for _, r := range seq {
		body = append(body, r.FullBytes...)
	}
	body = append(body, rdn...)
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

// sameName reports whether two DER Names hold the same attributes with the
// same values, in any order and whatever the string type (PrintableString
// and UTF8String of the same text are equal).
func sameName(a, b []byte) (bool, error) {
	ka, err := nameKeys(a)
	if err != nil {
		return false, err
	}
	kb, err := nameKeys(b)
	if err != nil {
		return false, err
	}
	return slices.Equal(ka, kb), nil
}

func nameKeys(name []byte) ([]string, error) {
	_, sets, err := rdns(name)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, set := range sets {
		for _, a := range set {
			keys = append(keys, a.Type.String()+"="+hex.EncodeToString(a.Value.Bytes))
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// issue signs an LDevID for pub with the given DER subject.
func (s *Server) issue(pub crypto.PublicKey, subject []byte) (*x509.Certificate, error) {
	serial, err := s.serialNumber()
	if err != nil {
		return nil, err
	}
	ski, err := pki.SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	now := s.now()
	nb := now.Add(-backdate).UTC().Truncate(time.Second)
	na := nb.Add(s.validity)
	tmpl := &x509.Certificate{
		NotBefore:   nb,
		NotAfter:    na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if s.tmpl != nil {
		s.tmpl(tmpl)
	}
	// What the hook may not change.
	tmpl.SerialNumber = serial
	tmpl.RawSubject = subject
	tmpl.SubjectKeyId = ski
	tmpl.AuthorityKeyId = s.caSKI
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	if tmpl.NotAfter.After(s.ca.Cert.NotAfter) {
		tmpl.NotAfter = s.ca.Cert.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("CA certificate expired %v", s.ca.Cert.NotAfter)
	}
	der, err := x509.CreateCertificate(s.rand, tmpl, s.ca.Cert, pub, s.ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// serialNumber returns a random positive 128-bit certificate serial (RFC
// 5280 §4.1.2.2: at most 20 octets; CA/B Forum: at least 64 random bits).
func (s *Server) serialNumber() (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		return nil, errors.New("serial: random source returned zeros")
	}
	return n, nil
}
