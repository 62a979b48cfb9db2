// Package testpki issues throwaway ECDSA P-256 certificates for tests and
// benchmarks of the CoAP transport: a root CA, intermediate CAs, and leaf
// certificates for DTLS servers (registrar) and clients (pledges).
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"
)

// oidKPCmcRA is id-kp-cmcRA (RFC 6402), which a cBRSKI registrar's
// certificate carries (cbrski.md §1.4).
var oidKPCmcRA = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 28}

var serial atomic.Int64

// CA is a certificate authority: a root, or an intermediate with its
// chain up to (not including) the root.
type CA struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	chain []*x509.Certificate // Cert and its issuers below the root
	root  *x509.Certificate
}

// NewRoot returns a self-signed root CA named cn.
func NewRoot(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := caTemplate(cn)
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, root: cert}, nil
}

// Intermediate returns a CA named cn issued by ca.
func (ca *CA) Intermediate(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := sign(caTemplate(cn), ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	chain := append([]*x509.Certificate{cert}, ca.chain...)
	return &CA{Cert: cert, Key: key, chain: chain, root: ca.root}, nil
}

// Pool is a CertPool holding the root of ca.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}

// Client issues a client certificate (a pledge's IDevID) with common name
// and serial-number attribute cn, chained with ca's intermediates.
func (ca *CA) Client(cn string) (tls.Certificate, error) {
	tmpl := leafTemplate(cn)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.issue(tmpl)
}

// Server issues a registrar-style certificate: serverAuth, clientAuth and
// cmcRA extended key usages.
func (ca *CA) Server(cn string) (tls.Certificate, error) {
	tmpl := leafTemplate(cn)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{oidKPCmcRA}
	return ca.issue(tmpl)
}

func (ca *CA) issue(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	out := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for _, c := range ca.chain {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func leafTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn, SerialNumber: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("testpki: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}
