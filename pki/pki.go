// Package pki holds the certificate profiles Tumbler issues and reads: the
// domain CA and registrar certificate of a gateway (cBRSKI -31 §"Registrar
// Server/Client Certificate Requirements"), the lab manufacturer CA and its
// IDevIDs (IEEE 802.1AR, with the RFC 8995 §2.3.2 MASA URL extension), and
// PEM helpers for keys and certificates.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Object identifiers used by the profiles.
var (
	// OIDMASAURL is id-pe-masa-url (RFC 8995 §2.3.2): an IA5String holding
	// the MASA's URI or host[:port].
	OIDMASAURL = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 32}
	// OIDCmcRA is id-kp-cmcRA (RFC 6402), which a BRSKI registrar
	// certificate must carry (RFC 8995 §5.5).
	OIDCmcRA = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 28}
	oidEKU   = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// GenerateKey returns a new P-256 key, the curve every Tumbler profile uses.
func GenerateKey(r io.Reader) (*ecdsa.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	return ecdsa.GenerateKey(elliptic.P256(), r)
}

// Issuer is a CA able to sign certificates.
type Issuer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Profile parameters shared by the constructors below.
type Profile struct {
	Subject   pkix.Name
	NotBefore time.Time     // zero: now minus one minute (clock skew)
	Validity  time.Duration // zero: the profile's default
	Rand      io.Reader     // nil: crypto/rand
}

func (p Profile) window(now time.Time, def time.Duration) (time.Time, time.Time) {
	nb := p.NotBefore
	if nb.IsZero() {
		nb = now.Add(-time.Minute)
	}
	v := p.Validity
	if v == 0 {
		v = def
	}
	return nb.UTC().Truncate(time.Second), nb.Add(v).UTC().Truncate(time.Second)
}

// RandomSerial returns a positive random certificate serial of 127 bits
// (RFC 5280 §4.1.2.2 allows at most 20 octets).
func RandomSerial(r io.Reader) (*big.Int, error) {
	if r == nil {
		r = rand.Reader
	}
	max := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(r, max)
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func sign(tmpl *x509.Certificate, parent *Issuer, pub crypto.PublicKey, key crypto.Signer, r io.Reader) (*x509.Certificate, error) {
	if r == nil {
		r = rand.Reader
	}
	var err error
	if tmpl.SerialNumber == nil {
		if tmpl.SerialNumber, err = RandomSerial(r); err != nil {
			return nil, err
		}
	}
	skid, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SubjectKeyId = skid
	issuerCert, signer := tmpl, key
	if parent != nil {
		issuerCert, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(r, tmpl, issuerCert, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// SubjectKeyID is RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey
// BIT STRING. Go derives the same value; it is computed here so that the
// registrar can rebuild an idevid-issuer for certificates without an AKI.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("pki: public key: %w", err)
	}
	return sha1Sum(spki.PublicKey.Bytes), nil
}

// NewCA creates a self-signed CA (domain CA or manufacturer CA) with key.
// Default validity: 20 years.
func NewCA(now time.Time, key crypto.Signer, p Profile) (*x509.Certificate, error) {
	nb, na := p.window(now, 20*365*24*time.Hour)
	tmpl := &x509.Certificate{
		Subject:               p.Subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	return sign(tmpl, nil, key.Public(), key, p.Rand)
}

// NewRegistrarCert issues the registrar's certificate: the DTLS server
// certificate pledges see, the TLS client certificate the MASA sees, and the
// key that signs registrar voucher-requests. It carries id-kp-cmcRA,
// serverAuth and clientAuth (cBRSKI -31 §"Registrar Server/Client
// Certificate Requirements"). Default validity: 5 years.
func NewRegistrarCert(now time.Time, ca *Issuer, pub crypto.PublicKey, p Profile, dnsNames ...string) (*x509.Certificate, error) {
	nb, na := p.window(now, 5*365*24*time.Hour)
	tmpl := &x509.Certificate{
		Subject:     p.Subject,
		NotBefore:   nb,
		NotAfter:    na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// Go has no constant for cmcRA; it goes in UnknownExtKeyUsage.
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{OIDCmcRA},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
	}
	return sign(tmpl, ca, pub, nil, p.Rand)
}

// NewServerCert issues a TLS server certificate (the lab MASA's HTTPS
// certificate) for the given DNS names and IP literals.
func NewServerCert(now time.Time, ca *Issuer, pub crypto.PublicKey, p Profile, hosts ...string) (*x509.Certificate, error) {
	nb, na := p.window(now, 5*365*24*time.Hour)
	tmpl := &x509.Certificate{
		Subject:               p.Subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	addHosts(tmpl, hosts)
	return sign(tmpl, ca, pub, nil, p.Rand)
}

// IDevIDProfile describes a manufacturer-installed identity.
type IDevIDProfile struct {
	Profile
	// SerialNumber goes in the subject serialNumber attribute (2.5.4.5); the
	// registrar takes the voucher serial-number from it (RFC 8995 §2.3.1).
	SerialNumber string
	// MASAURL goes in the id-pe-masa-url extension; empty omits it.
	MASAURL string
}

// NewIDevID issues an IDevID from the manufacturer CA. RFC 8995 §2.3.1
// recommends the notAfter 99991231235959Z for IDevIDs; that is the default.
func NewIDevID(now time.Time, ca *Issuer, pub crypto.PublicKey, p IDevIDProfile) (*x509.Certificate, error) {
	if p.SerialNumber == "" {
		return nil, fmt.Errorf("pki: idevid: %w", ErrNoSerial)
	}
	subj := p.Subject
	subj.SerialNumber = p.SerialNumber
	if subj.CommonName == "" {
		subj.CommonName = "Tumbler pledge " + p.SerialNumber
	}
	nb, na := p.window(now, 0)
	if p.Validity == 0 {
		na = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	tmpl := &x509.Certificate{
		Subject:               subj,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if p.MASAURL != "" {
		v, err := asn1.MarshalWithParams(p.MASAURL, "ia5")
		if err != nil {
			return nil, fmt.Errorf("pki: masa url %q: %w", p.MASAURL, err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: OIDMASAURL, Value: v})
	}
	return sign(tmpl, ca, pub, nil, p.Rand)
}

// MASAURL returns the id-pe-masa-url extension of an IDevID, normalised to
// an https URL: RFC 8995 §2.3.2 allows a bare "host[:port]" or a full URI.
// ok is false when the certificate has no such extension.
func MASAURL(cert *x509.Certificate) (u string, ok bool, err error) {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(OIDMASAURL) {
			continue
		}
		var s string
		rest, err := asn1.UnmarshalWithParams(ext.Value, &s, "ia5")
		if err != nil || len(rest) != 0 {
			return "", true, fmt.Errorf("pki: %w: not an IA5String", ErrMASAURL)
		}
		n, err := NormalizeMASAURL(s)
		return n, true, err
	}
	return "", false, nil
}

// NormalizeMASAURL turns "host[:port]" or "https://host[:port][/path]" into
// "https://host[:port]" (any path is dropped: the BRSKI well-known paths are
// appended by the client).
func NormalizeMASAURL(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("pki: %w: empty", ErrMASAURL)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("pki: %w: %q", ErrMASAURL, s)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("pki: %w: scheme %q (BRSKI requires https)", ErrMASAURL, u.Scheme)
	}
	return "https://" + u.Host, nil
}

// HasCmcRA reports whether cert carries the id-kp-cmcRA extended key usage.
func HasCmcRA(cert *x509.Certificate) bool {
	for _, o := range cert.UnknownExtKeyUsage {
		if o.Equal(OIDCmcRA) {
			return true
		}
	}
	return false
}

// DeviceID is the Tumbler device identifier: SHA-256 of the IDevID
// certificate DER (DESIGN.md "Records").
func DeviceID(idevid *x509.Certificate) [32]byte { return sha256.Sum256(idevid.Raw) }

// SPKIHash is SHA-256 over the DER SubjectPublicKeyInfo.
func SPKIHash(cert *x509.Certificate) [32]byte { return sha256.Sum256(cert.RawSubjectPublicKeyInfo) }

// NewSignerCert issues a certificate for a key that signs documents (the
// gateway's record signer): digitalSignature, no extended key usage, not a
// CA. Default validity: 20 years (records outlive devices).
func NewSignerCert(now time.Time, ca *Issuer, pub crypto.PublicKey, p Profile) (*x509.Certificate, error) {
	nb, na := p.window(now, 20*365*24*time.Hour)
	tmpl := &x509.Certificate{
		Subject:               p.Subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	return sign(tmpl, ca, pub, nil, p.Rand)
}
