package est

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
)

// Golden vectors: see testdata/README.md for where each file comes from.

func TestGoldenMultipart(t *testing.T) {
	type want struct {
		format uint16
		len    int
	}
	tests := []struct {
		name  string
		file  string
		parts []want
	}{
		{"RFC 8710 §2 two parts", "rfc8710-s2-multipart-62.hex", []want{{42, 8}, {0, 5}}},
		{"RFC 8710 §5 empty", "rfc8710-s5-empty-62.hex", nil},
		{"RFC 8710 §5 one text part", "rfc8710-s5-hello-62.hex", []want{{0, 11}}},
		{"RFC 9148 §5.3 skg example", "rfc9148-s5.3-multipart-62.hex", []want{{284, 8}, {281, 8}}},
		{"RFC 9148 §A.3 skg response", "rfc9148-a3-skg-resp-62.hex", []want{{284, 138}, {281, 467}}},
		{"cBRSKI §1.5 crts, domain CA part", "cv-crts-domain-ca-62.hex", []want{{287, 582}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := hexFile(t, tc.file)
			parts, err := decodeMultipart(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != len(tc.parts) {
				t.Fatalf("got %d parts, want %d", len(parts), len(tc.parts))
			}
			for i, w := range tc.parts {
				if parts[i].format != w.format || len(parts[i].data) != w.len {
					t.Errorf("part %d = (%d, %d bytes), want (%d, %d bytes)", i, parts[i].format, len(parts[i].data), w.format, w.len)
				}
			}
			out, err := encodeMultipart(parts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Errorf("re-encoding differs:\n got %x\nwant %x", out, in)
			}
		})
	}
}

func TestGoldenMultipartText(t *testing.T) {
	parts, err := decodeMultipart(hexFile(t, "rfc8710-s5-hello-62.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(parts[0].data); got != "Hello world" {
		t.Errorf("part = %q", got)
	}
}

func TestGoldenParseCerts(t *testing.T) {
	a3, err := decodeMultipart(hexFile(t, "rfc9148-a3-skg-resp-62.hex"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		format  int
		payload []byte
		subject string // of the first certificate
		serial  string // hex, of the first certificate
		n       int
	}{
		{"RFC 9148 §A.1 crts 281", coap.FormatPKCS7CertsOnly, hexFile(t, "rfc9148-a1-crts-281.hex"),
			"CN=Root CA,OU=certification,O=Example Inc,L=LA,ST=CA,C=US", "b8bb0fe604f6a1e", 1},
		{"RFC 9148 §A.2 sen response 281", coap.FormatPKCS7CertsOnly, hexFile(t, "rfc9148-a2-sen-resp-281.hex"),
			"SERIALNUMBER=Wt1234,OU=IoT,O=example Inc,L=LA,ST=CA,C=US", "7e7661d7b54e4632", 1},
		{"RFC 9148 §A.3 skg certificate part 281", coap.FormatPKCS7CertsOnly, a3[1].data,
			"O=skg example", "b3313e8f3fc9538e", 1},
		{"cBRSKI domain CA 287", coap.FormatPKIXCert, hexFile(t, "cv-domain_ca-287.hex"),
			"CN=Custom-ER Global CA,OU=IT,O=Custom-ER\\, Inc.,L=San Jose,ST=CA,C=US", "2aea0413a42dc1ce", 1},
		{"cBRSKI registrar 287", coap.FormatPKIXCert, hexFile(t, "cv-registrar-287.hex"), "", "", 1},
		{"cBRSKI pledge 287", coap.FormatPKIXCert, hexFile(t, "cv-pledge-287.hex"), "", "", 1},
		{"cBRSKI §1.5 crts 62", coap.FormatMultipartCore, hexFile(t, "cv-crts-domain-ca-62.hex"),
			"CN=Custom-ER Global CA,OU=IT,O=Custom-ER\\, Inc.,L=San Jose,ST=CA,C=US", "2aea0413a42dc1ce", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCerts(tc.format, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != tc.n {
				t.Fatalf("got %d certificates, want %d", len(certs), tc.n)
			}
			if tc.subject != "" {
				if got := certs[0].Subject.String(); got != tc.subject {
					t.Errorf("subject = %q, want %q", got, tc.subject)
				}
			}
			if tc.serial != "" {
				if got := certs[0].SerialNumber.Text(16); got != tc.serial {
					t.Errorf("serial = %s, want %s", got, tc.serial)
				}
			}
		})
	}
}

// The RFC 9148 §A.1 root CA is self-signed: its signature checks, which
// also proves the transcription of the hex.
func TestGoldenRFC9148RootSelfSigned(t *testing.T) {
	certs, err := ParseCerts(coap.FormatPKCS7CertsOnly, hexFile(t, "rfc9148-a1-crts-281.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if err := certs[0].CheckSignatureFrom(certs[0]); err != nil {
		t.Fatal(err)
	}
}

// Our PKCS#7 encoder reproduces the RFC 9148 certs-only responses byte for
// byte (including the empty crls [1] and signerInfos that OpenSSL emits).
func TestGoldenPKCS7Encoding(t *testing.T) {
	for _, file := range []string{"rfc9148-a1-crts-281.hex", "rfc9148-a2-sen-resp-281.hex"} {
		t.Run(file, func(t *testing.T) {
			in := hexFile(t, file)
			certs, err := ParseCerts(coap.FormatPKCS7CertsOnly, in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := certsOnly(certs...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Errorf("re-encoding differs:\n got %x\nwant %x", out, in)
			}
		})
	}
}

func TestGoldenParseCertsRejects(t *testing.T) {
	tests := []struct {
		name   string
		format int
		file   string
		want   error
	}{
		{"RFC 9148 §A.3 skg response holds a key part", coap.FormatMultipartCore, "rfc9148-a3-skg-resp-62.hex", ErrPartFormat},
		{"RFC 8710 §2 parts are not certificates", coap.FormatMultipartCore, "rfc8710-s2-multipart-62.hex", ErrPartFormat},
		{"RFC 8710 §5 empty collection", coap.FormatMultipartCore, "rfc8710-s5-empty-62.hex", ErrNoCerts},
		{"RFC 8710 §5 text part", coap.FormatMultipartCore, "rfc8710-s5-hello-62.hex", ErrPartFormat},
		{"PKCS#7 given as 287", coap.FormatPKIXCert, "rfc9148-a1-crts-281.hex", ErrCert},
		{"certificate given as 281", coap.FormatPKCS7CertsOnly, "cv-domain_ca-287.hex", ErrPKCS7},
		{"CSR given as 287", coap.FormatPKIXCert, "rfc9148-a2-sen-csr.hex", ErrCert},
		{"csrattrs given as 62", coap.FormatMultipartCore, "rfc9148-a4-att-285.hex", ErrMultipart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCerts(tc.format, hexFile(t, tc.file))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestGoldenCSRAttrs(t *testing.T) {
	in := hexFile(t, "rfc9148-a4-att-285.hex")
	attrs, err := ParseCSRAttrs(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		oid    string
		values int
	}{
		{"1.3.6.1.1.1.1.22", 0},       // macAddress
		{"2.999.1", 1},                // "Parse SET as 2.999.1 data"
		{"1.2.840.113549.1.9.7", 0},   // challengePassword
		{"2.999.2", 3},                // 2.999.3, 2.999.4, "Parse SET as 2.999.2 data"
		{"1.3.36.3.3.2.8.1.1.11", 0},  // brainpoolP384r1
		{"2.16.840.1.101.3.4.2.2", 0}, // sha384
	}
	if len(attrs) != len(want) {
		t.Fatalf("got %d elements, want %d", len(attrs), len(want))
	}
	for i, w := range want {
		if got := attrs[i].OID.String(); got != w.oid || len(attrs[i].Values) != w.values {
			t.Errorf("element %d = %s with %d values, want %s with %d", i, got, len(attrs[i].Values), w.oid, w.values)
		}
	}
	var s string
	if _, err := asn1.Unmarshal(attrs[1].Values[0].FullBytes, &s); err != nil || s != "Parse SET as 2.999.1 data" {
		t.Errorf("2.999.1 value = %q, %v", s, err)
	}
	out, err := attrs.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("re-encoding differs:\n got %x\nwant %x", out, in)
	}
}

func TestGoldenDefaultCSRAttrs(t *testing.T) {
	want := []byte{
		0x30, 0x21, // CsrAttrs SEQUENCE
		0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, // OID ecdsa-with-SHA256
		0x30, 0x15, // Attribute
		0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // type id-ecPublicKey
		0x31, 0x0a, // values SET
		0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // OID secp256r1
	}
	got, err := DefaultCSRAttrs().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	if _, err := ParseCSRAttrs(got); err != nil {
		t.Fatal(err)
	}
}

// The RFC 9148 §A.2 CSR, enrolled through our /sen: it carries
// serialNumber=Wt1234, so the peer must be that device.
func TestGoldenEnrollRFC9148CSR(t *testing.T) {
	p := sharedPKI(t)
	csrDER := hexFile(t, "rfc9148-a2-sen-csr.hex")
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("RFC 9148 CSR signature: %v", err)
	}
	tests := []struct {
		name   string
		serial string
		code   codes.Code
		want   error
	}{
		{"peer is Wt1234", "Wt1234", codes.Changed, nil},
		{"peer is another device", "Wt9999", codes.BadRequest, ErrSerialMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &fakeRecorder{}
			s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, tc.serial)}, rec)
			resp, err := s.enrollHandler(Enroll)(context.Background(),
				postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatPKCS7CertsOnly, csrDER))
			if tc.want != nil {
				if code, _ := coap.CodeOf(err); code != tc.code || !errors.Is(err, tc.want) {
					t.Fatalf("err = %v (code %v), want %v %v", err, code, tc.code, tc.want)
				}
				if rec.count() != 0 {
					t.Fatal("recorder called on a refused request")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.code || resp.ContentFormat != coap.FormatPKCS7CertsOnly {
				t.Fatalf("response %v CF %d", resp.Code, resp.ContentFormat)
			}
			certs, err := ParseCerts(resp.ContentFormat, resp.Payload)
			if err != nil {
				t.Fatal(err)
			}
			c := certs[0]
			if !bytes.Equal(c.RawSubject, csr.RawSubject) {
				t.Errorf("subject %q, want the CSR's %q", c.Subject, csr.Subject)
			}
			if !samePublicKey(c.PublicKey, csr.PublicKey) {
				t.Error("public key differs from the CSR's")
			}
			if c.SerialNumber.Cmp(big.NewInt(0)) <= 0 {
				t.Error("serial not positive")
			}
		})
	}
}
