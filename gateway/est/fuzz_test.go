package est

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tumbler-iot/tumbler/coap"
)

// seedFiles returns the testdata/*.hex files whose name ends in -<suffix>.hex.
func seedFiles(f *testing.F, suffix string) [][]byte {
	f.Helper()
	ents, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), "-"+suffix+".hex") {
			out = append(out, hexFile(f, e.Name()))
		}
	}
	if len(out) == 0 {
		f.Fatalf("no testdata/*-%s.hex seeds", suffix)
	}
	return out
}

var parseErrors = []error{ErrTooLarge, ErrFormat, ErrMultipart, ErrPartFormat, ErrPKCS7, ErrCert, ErrNoCerts}

// FuzzParseCerts checks, per format, that whatever ParseCerts accepts is
// exactly what it says: for 287 the DER itself, for 62 the only (preferred)
// encoding of its parts, for 281 certificates found in the input that
// survive a PKCS#7 round trip. Rejections use the package's sentinels.
func FuzzParseCerts(f *testing.F) {
	for _, format := range []int{coap.FormatPKIXCert, coap.FormatPKCS7CertsOnly, coap.FormatMultipartCore} {
		for _, suffix := range []string{"287", "281", "62"} {
			for _, b := range seedFiles(f, suffix) {
				f.Add(uint16(format), b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, format uint16, data []byte) {
		certs, err := ParseCerts(int(format), data)
		if err != nil {
			if certs != nil {
				t.Fatal("certificates returned with an error")
			}
			for _, s := range parseErrors {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		if len(certs) == 0 || len(certs) > MaxCerts {
			t.Fatalf("%d certificates", len(certs))
		}
		switch int(format) {
		case coap.FormatPKIXCert:
			if len(certs) != 1 || !bytes.Equal(certs[0].Raw, data) {
				t.Fatal("287: certificate is not the payload")
			}
		case coap.FormatMultipartCore:
			parts := make([]part, len(certs))
			for i, c := range certs {
				parts[i] = part{format: coap.FormatPKIXCert, data: c.Raw}
			}
			again, err := encodeMultipart(parts)
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("62: payload is not the encoding of its certificates (%v)", err)
			}
		case coap.FormatPKCS7CertsOnly:
			for i, c := range certs {
				if !bytes.Contains(data, c.Raw) {
					t.Fatalf("281: certificate %d is not in the payload", i)
				}
			}
			enc, err := certsOnly(certs...)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseCerts(coap.FormatPKCS7CertsOnly, enc)
			if err != nil || len(again) != len(certs) {
				t.Fatalf("281: round trip: %d certs, %v", len(again), err)
			}
			for i := range certs {
				if !again[i].Equal(certs[i]) {
					t.Fatalf("281: round trip changed certificate %d", i)
				}
			}
		default:
			t.Fatalf("format %d accepted", format)
		}
	})
}

// FuzzMultipart checks that a decoded multipart-core collection re-encodes
// to the input (one encoding per value) and that rejections are ErrMultipart.
func FuzzMultipart(f *testing.F) {
	for _, b := range seedFiles(f, "62") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parts, err := decodeMultipart(data)
		if err != nil {
			if !errors.Is(err, ErrMultipart) {
				t.Fatalf("error without ErrMultipart: %v", err)
			}
			return
		}
		again, err := encodeMultipart(parts)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decode/encode is not the identity (%v)", err)
		}
	})
}

// FuzzParseCSRAttrs checks that accepted input is DER: it re-encodes to
// itself.
func FuzzParseCSRAttrs(f *testing.F) {
	for _, b := range seedFiles(f, "285") {
		f.Add(b)
	}
	def, err := DefaultCSRAttrs().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	f.Fuzz(func(t *testing.T, data []byte) {
		attrs, err := ParseCSRAttrs(data)
		if err != nil {
			if attrs != nil || !errors.Is(err, ErrCSRAttrs) {
				t.Fatalf("bad rejection: %v", err)
			}
			return
		}
		again, err := attrs.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decode/encode is not the identity (%v)", err)
		}
	})
}

// FuzzEnroll feeds arbitrary payloads to /sen. A refusal is a 4.xx with a
// sentinel and records nothing; an issued certificate carries the CSR's key
// and the authenticated serial, and chains to the CA.
func FuzzEnroll(f *testing.F) {
	p := sharedPKI(f)
	f.Add(hexFile(f, "rfc9148-a2-sen-csr.hex"))
	f.Add(mustCSR(f, newP256(f), pkix.Name{CommonName: "fuzz"}))
	f.Add(mustCSR(f, newP256(f), pkix.Name{CommonName: "fuzz", SerialNumber: "Wt1234"}))
	f.Add([]byte{0x30, 0x00})
	rec := &fakeRecorder{}
	s := newTestServer(f, &fakeAuthorizer{id: identityFor(p.idevid, "Wt1234")}, rec)
	h := s.enrollHandler(Enroll)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := rec.count()
		resp, err := h(context.Background(), postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone, data))
		if err != nil {
			code, _ := coap.CodeOf(err)
			if code>>5 != 4 || resp != nil {
				t.Fatalf("refusal %v: %v", code, err)
			}
			if rec.count() != before {
				t.Fatal("refused request was recorded")
			}
			return
		}
		csr, perr := x509.ParseCertificateRequest(data)
		if perr != nil {
			t.Fatalf("issued for an unparsable CSR: %v", perr)
		}
		c, cerr := x509.ParseCertificate(resp.Payload)
		if cerr != nil {
			t.Fatal(cerr)
		}
		if err := c.CheckSignatureFrom(p.issuing); err != nil {
			t.Fatal(err)
		}
		if !samePublicKey(c.PublicKey, csr.PublicKey) || c.Subject.SerialNumber != "Wt1234" {
			t.Fatalf("issued %q for key %T", c.Subject, csr.PublicKey)
		}
		if rec.count() != before+1 {
			t.Fatal("issued without a record")
		}
	})
}
