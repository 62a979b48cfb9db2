package est

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/smallstep/pkcs7"

	"github.com/tumbler-iot/tumbler/coap"
)

func TestNewCSR(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	subject := pkix.Name{CommonName: "pledge", SerialNumber: "S1"}
	tests := []struct {
		name string
		key  crypto.Signer
		alg  x509.SignatureAlgorithm
		want error
	}{
		{"P-256", newP256(t), x509.ECDSAWithSHA256, nil},
		{"Ed25519", ed, x509.PureEd25519, nil},
		{"P-384 refused", p384, 0, ErrKeyType},
		{"nil key", nil, 0, ErrKeyType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := NewCSR(rand.Reader, tc.key, subject)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			csr, err := checkCSR(der)
			if err != nil {
				t.Fatal(err)
			}
			if csr.SignatureAlgorithm != tc.alg || csr.Subject.String() != subject.String() {
				t.Errorf("alg %v subject %q", csr.SignatureAlgorithm, csr.Subject)
			}
		})
	}
}

func TestParseCertsRejects(t *testing.T) {
	p := sharedPKI(t)
	cert := p.issuing.Raw
	mp := func(parts ...part) []byte {
		b, err := encodeMultipart(parts)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nine := make([]part, MaxCerts+1)
	for i := range nine {
		nine[i] = part{format: 287, data: cert}
	}
	signed := signedPKCS7(t, p)
	tests := []struct {
		name    string
		format  int
		payload []byte
		want    error
	}{
		{"unknown format", coap.FormatCBOR, cert, ErrFormat},
		{"oversize", coap.FormatPKIXCert, make([]byte, MaxCertsSize+1), ErrTooLarge},
		{"287 empty", coap.FormatPKIXCert, nil, ErrCert},
		{"287 trailing byte", coap.FormatPKIXCert, append(bytes.Clone(cert), 0), ErrCert},
		{"281 empty", coap.FormatPKCS7CertsOnly, nil, ErrPKCS7},
		{"281 garbage", coap.FormatPKCS7CertsOnly, []byte{0x30, 0x03, 0x02, 0x01, 0x01}, ErrPKCS7},
		{"281 with a signer", coap.FormatPKCS7CertsOnly, signed, ErrPKCS7},
		{"62 not CBOR", coap.FormatMultipartCore, []byte{0xff}, ErrMultipart},
		{"62 empty payload", coap.FormatMultipartCore, nil, ErrMultipart},
		{"62 odd length", coap.FormatMultipartCore, []byte{0x81, 0x19, 0x01, 0x1f}, ErrMultipart},
		{"62 map", coap.FormatMultipartCore, []byte{0xa1, 0x01, 0x02}, ErrMultipart},
		{"62 null", coap.FormatMultipartCore, []byte{0xf6}, ErrMultipart},
		{"62 null part", coap.FormatMultipartCore, []byte{0x82, 0x19, 0x01, 0x1f, 0xf6}, ErrMultipart},
		{"62 text part", coap.FormatMultipartCore, []byte{0x82, 0x19, 0x01, 0x1f, 0x61, 'a'}, ErrMultipart},
		{"62 negative format", coap.FormatMultipartCore, []byte{0x82, 0x20, 0x41, 0x00}, ErrMultipart},
		{"62 format over 16 bits", coap.FormatMultipartCore, []byte{0x82, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x41, 0x00}, ErrMultipart},
		{"62 tagged part", coap.FormatMultipartCore, []byte{0x82, 0x19, 0x01, 0x1f, 0xd8, 0x18, 0x41, 0x00}, ErrMultipart},
		{"62 indefinite array", coap.FormatMultipartCore, []byte{0x9f, 0x19, 0x01, 0x1f, 0x41, 0x00, 0xff}, ErrMultipart},
		{"62 indefinite byte string", coap.FormatMultipartCore, []byte{0x82, 0x19, 0x01, 0x1f, 0x5f, 0x41, 0x00, 0xff}, ErrMultipart},
		{"62 non-preferred array head", coap.FormatMultipartCore, []byte{0x98, 0x02, 0x19, 0x01, 0x1f, 0x41, 0x00}, ErrMultipart},
		{"62 non-preferred format", coap.FormatMultipartCore, []byte{0x82, 0x1a, 0x00, 0x00, 0x01, 0x1f, 0x41, 0x00}, ErrMultipart},
		{"62 trailing data", coap.FormatMultipartCore, append(mp(part{287, cert}), 0x00), ErrMultipart},
		{"62 too many parts", coap.FormatMultipartCore, mp(nine...), ErrMultipart},
		{"62 a 281 part", coap.FormatMultipartCore, mp(part{287, cert}, part{281, cert}), ErrPartFormat},
		{"62 a bad certificate", coap.FormatMultipartCore, mp(part{287, cert[:10]}), ErrCert},
		{"62 no parts", coap.FormatMultipartCore, []byte{0x80}, ErrNoCerts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCerts(tc.format, tc.payload)
			if certs != nil || !errors.Is(err, tc.want) {
				t.Fatalf("ParseCerts = %d certs, %v; want %v", len(certs), err, tc.want)
			}
		})
	}
}

// signedPKCS7 is SignedData with a signer: not certs-only.
func signedPKCS7(t *testing.T, p *testPKI) []byte {
	t.Helper()
	sd, err := pkcs7.NewSignedData(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(p.issuing, p.issuingKey, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	b, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCSRAttrsRejects(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
	}{
		{"empty", nil},
		{"not a sequence", []byte{0x06, 0x03, 0x88, 0x37, 0x01}},
		{"trailing data", []byte{0x30, 0x00, 0x00}},
		{"integer element", []byte{0x30, 0x03, 0x02, 0x01, 0x01}},
		{"attribute with empty set", []byte{0x30, 0x09, 0x30, 0x07, 0x06, 0x03, 0x88, 0x37, 0x01, 0x31, 0x00}},
		{"attribute without set", []byte{0x30, 0x07, 0x30, 0x05, 0x06, 0x03, 0x88, 0x37, 0x01}},
		{"set out of DER order", []byte{
			0x30, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x88, 0x37, 0x01,
			0x31, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01, // INTEGER 2, INTEGER 1
		}},
		{"indefinite length", []byte{0x30, 0x80, 0x06, 0x03, 0x88, 0x37, 0x01, 0x00, 0x00}},
		{"non-minimal length", []byte{0x30, 0x81, 0x05, 0x06, 0x03, 0x88, 0x37, 0x01}},
		{"oversize", make([]byte, MaxCSRSize+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseCSRAttrs(tc.der)
			if a != nil || !errors.Is(err, ErrCSRAttrs) {
				t.Fatalf("ParseCSRAttrs = %v, %v; want ErrCSRAttrs", a, err)
			}
		})
	}
}

func TestCSRAttrsMarshalRejectsEmptyAttribute(t *testing.T) {
	_, err := CSRAttrs{{OID: OIDECPublicKey, Values: []asn1.RawValue{}}}.Marshal()
	if !errors.Is(err, ErrCSRAttrs) {
		t.Fatalf("err = %v", err)
	}
}
