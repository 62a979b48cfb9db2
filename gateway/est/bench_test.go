package est

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/tumbler-iot/tumbler/coap"
)

// BenchmarkEnroll measures /sen handling: CSR parse and verify, checks,
// LDevID signing (with Go's post-signature check) and encoding.
func BenchmarkEnroll(b *testing.B) {
	p := sharedPKI(b)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		csr    []byte
		accept int
	}{
		{"P-256/287", mustCSR(b, newP256(b), p.idevid.Subject), coap.FormatPKIXCert},
		{"P-256/281", mustCSR(b, newP256(b), p.idevid.Subject), coap.FormatPKCS7CertsOnly},
		{"Ed25519/287", mustCSR(b, ed, pkix.Name{CommonName: "dev"}), coap.FormatPKIXCert},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newTestServer(b, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, nopRecorder{})
			h := s.enrollHandler(Enroll)
			req := postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, bc.accept, bc.csr)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type nopRecorder struct{}

func (nopRecorder) RecordIssued(context.Context, Identity, *x509.Certificate, Op) error { return nil }

func BenchmarkCrts(b *testing.B) {
	p := sharedPKI(b)
	s := newTestServer(b, &fakeAuthorizer{}, nopRecorder{})
	req := getReq(PathCrts, []*x509.Certificate{p.idevid}, coap.FormatMultipartCore)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.serveCrts(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCerts(b *testing.B) {
	for _, bc := range []struct {
		name   string
		format int
		file   string
	}{
		{"62", coap.FormatMultipartCore, "cv-crts-domain-ca-62.hex"},
		{"281", coap.FormatPKCS7CertsOnly, "rfc9148-a1-crts-281.hex"},
		{"287", coap.FormatPKIXCert, "cv-domain_ca-287.hex"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			payload := hexFile(b, bc.file)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseCerts(bc.format, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
