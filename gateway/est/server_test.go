package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/coap"
)

func TestEnrollIssuesLDevID(t *testing.T) {
	p := sharedPKI(t)
	authz := &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}
	rec := &fakeRecorder{}
	s := newTestServer(t, authz, rec)
	key := newP256(t)
	csr := mustCSR(t, key, p.idevid.Subject)

	resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone, csr))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Changed || resp.ContentFormat != coap.FormatPKIXCert {
		t.Fatalf("got %v CF %d, want 2.04 CF 287", resp.Code, resp.ContentFormat)
	}
	certs, err := ParseCerts(coap.FormatPKIXCert, resp.Payload)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]

	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	inter := x509.NewCertPool()
	inter.AddCert(p.issuing)
	if _, err := c.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: testNow,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("LDevID does not chain to the domain root: %v", err)
	}
	if c.Subject.SerialNumber != "ACME-0001" {
		t.Errorf("subject serialNumber = %q", c.Subject.SerialNumber)
	}
	if c.Subject.CommonName != "Acme sensor" {
		t.Errorf("subject CN = %q, want the CSR's", c.Subject.CommonName)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("EKU = %v, want clientAuth", c.ExtKeyUsage)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want digitalSignature", c.KeyUsage)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Error("LDevID must carry CA:FALSE")
	}
	if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, p.issuing.SubjectKeyId) {
		t.Errorf("SKI %x AKI %x, want AKI %x", c.SubjectKeyId, c.AuthorityKeyId, p.issuing.SubjectKeyId)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x is not a positive 128-bit number", c.SerialNumber)
	}
	if !c.NotBefore.Equal(testNow.Add(-time.Minute)) || !c.NotAfter.Equal(testNow.Add(-time.Minute).Add(DefaultValidity)) {
		t.Errorf("validity %v .. %v", c.NotBefore, c.NotAfter)
	}
	if !samePublicKey(c.PublicKey, key.Public()) {
		t.Error("certificate key is not the CSR key")
	}
	if rec.count() != 1 || rec.ops[0] != Enroll || rec.ids[0] != authz.id || !rec.certs[0].Equal(c) {
		t.Errorf("recorder saw %d certs, ops %v", rec.count(), rec.ops)
	}
	if len(authz.calls) != 1 || authz.calls[0] != Enroll {
		t.Errorf("authorizer calls %v", authz.calls)
	}
}

func TestEnrollAccept(t *testing.T) {
	p := sharedPKI(t)
	s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, &fakeRecorder{})
	csr := mustCSR(t, newP256(t), p.idevid.Subject)
	tests := []struct {
		name   string
		accept int
		code   codes.Code
		format int
		want   error
	}{
		{"none gives 287", coap.FormatNone, codes.Changed, coap.FormatPKIXCert, nil},
		{"287", coap.FormatPKIXCert, codes.Changed, coap.FormatPKIXCert, nil},
		{"281", coap.FormatPKCS7CertsOnly, codes.Changed, coap.FormatPKCS7CertsOnly, nil},
		{"62 is not offered", coap.FormatMultipartCore, codes.NotAcceptable, 0, ErrAccept},
		{"text", coap.FormatText, codes.NotAcceptable, 0, ErrAccept},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, tc.accept, csr))
			if tc.want != nil {
				if code, _ := coap.CodeOf(err); code != tc.code || !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v %v", err, tc.code, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.code || resp.ContentFormat != tc.format {
				t.Fatalf("got %v CF %d", resp.Code, resp.ContentFormat)
			}
			certs, err := ParseCerts(resp.ContentFormat, resp.Payload)
			if err != nil || len(certs) != 1 {
				t.Fatalf("%d certs, %v", len(certs), err)
			}
		})
	}
}

func TestEnrollRefusals(t *testing.T) {
	p := sharedPKI(t)
	idevid := []*x509.Certificate{p.idevid}
	good := mustCSR(t, newP256(t), p.idevid.Subject)
	badSig := bytes.Clone(good)
	badSig[len(badSig)-1] ^= 0x01
	otherSerial := mustCSR(t, newP256(t), pkix.Name{CommonName: "Acme sensor", SerialNumber: "ACME-9999"})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384CSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: p.idevid.Subject}, p384)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: p.idevid.Subject}, rsa1024)
	if err != nil {
		t.Fatal(err)
	}
	okID := identityFor(p.idevid, "ACME-0001")

	tests := []struct {
		name    string
		req     *coap.Request
		authz   *fakeAuthorizer
		recErr  error
		code    codes.Code
		want    error
		authzed bool // whether the authorizer is consulted
	}{
		{"no client certificate", postReq(PathSen, nil, coap.FormatPKCS10, coap.FormatNone, good), nil, nil,
			codes.Unauthorized, ErrUnauthenticated, false},
		{"content-format cbor", postReq(PathSen, idevid, coap.FormatCBOR, coap.FormatNone, good), nil, nil,
			codes.UnsupportedMediaType, ErrContentFormat, false},
		{"no content-format", postReq(PathSen, idevid, coap.FormatNone, coap.FormatNone, good), nil, nil,
			codes.UnsupportedMediaType, ErrContentFormat, false},
		{"accept cbor", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatCBOR, good), nil, nil,
			codes.NotAcceptable, ErrAccept, false},
		{"csr too large", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, make([]byte, MaxCSRSize+1)), nil, nil,
			codes.RequestEntityTooLarge, ErrTooLarge, false},
		{"empty csr", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, nil), nil, nil,
			codes.BadRequest, ErrBadCSR, false},
		{"garbage csr", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, []byte("not a csr")), nil, nil,
			codes.BadRequest, ErrBadCSR, false},
		{"truncated csr", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, good[:len(good)-3]), nil, nil,
			codes.BadRequest, ErrBadCSR, false},
		{"csr with trailing data", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, append(bytes.Clone(good), 0)), nil, nil,
			codes.BadRequest, ErrBadCSR, false},
		{"csr signature invalid", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, badSig), nil, nil,
			codes.BadRequest, ErrCSRSignature, false},
		{"P-384 key", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, p384CSR), nil, nil,
			codes.BadRequest, ErrKeyType, false},
		{"RSA-1024 key", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, rsaCSR), nil, nil,
			codes.BadRequest, ErrKeyType, false},
		{"csr serialNumber mismatch", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, otherSerial), nil, nil,
			codes.BadRequest, ErrSerialMismatch, true},
		{"authorizer refuses", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, good),
			&fakeAuthorizer{err: errors.New("voucher exchange not completed")}, nil,
			codes.Forbidden, ErrNotAuthorized, true},
		{"authorizer refuses with its own code", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, good),
			&fakeAuthorizer{err: coap.Errorf(codes.Unauthorized, "unknown device", nil)}, nil,
			codes.Unauthorized, ErrNotAuthorized, true},
		{"authorizer returns no identity", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, good),
			&fakeAuthorizer{}, nil, codes.InternalServerError, ErrIssue, true},
		{"recorder fails", postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, good), nil,
			errors.New("disk full"), codes.ServiceUnavailable, ErrNotRecorded, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			authz := tc.authz
			if authz == nil {
				authz = &fakeAuthorizer{id: okID}
			}
			rec := &fakeRecorder{err: tc.recErr}
			s := newTestServer(t, authz, rec)
			resp, err := serve(t, s, tc.req)
			if resp != nil {
				t.Fatalf("refused request answered with %v and %d payload bytes", resp.Code, len(resp.Payload))
			}
			code, diag := coap.CodeOf(err)
			if code != tc.code || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v (code %v), want %v %v", err, code, tc.code, tc.want)
			}
			if diag == "" || strings.Contains(diag, "\n") {
				t.Errorf("diagnostic %q is not one line", diag)
			}
			if got := len(authz.calls) > 0; got != tc.authzed {
				t.Errorf("authorizer consulted = %v, want %v", got, tc.authzed)
			}
			wantRec := 0
			if tc.recErr != nil {
				wantRec = 1 // called, failed, and nothing was answered
			}
			if rec.count() != wantRec {
				t.Errorf("recorder called %d times, want %d", rec.count(), wantRec)
			}
		})
	}
}

func TestEnrollKeyTypes(t *testing.T) {
	p := sharedPKI(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"P-256", newP256(t)}, {"Ed25519", edKey}, {"RSA-2048", rsaKey}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, &fakeRecorder{})
			resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone,
				mustCSR(t, tc.key, pkix.Name{CommonName: "dev"})))
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(resp.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !samePublicKey(c.PublicKey, tc.key.Public()) {
				t.Error("key differs")
			}
		})
	}
}

// A CSR without serialNumber gets the authenticated serial as a last RDN;
// the rest of the subject is kept as sent.
func TestEnrollAddsSerial(t *testing.T) {
	p := sharedPKI(t)
	s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, &fakeRecorder{})
	csrDER := mustCSR(t, newP256(t), pkix.Name{Organization: []string{"Acme"}, CommonName: "kitchen"})
	resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone, csrDER))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(resp.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Subject.String(), "SERIALNUMBER=ACME-0001,CN=kitchen,O=Acme"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	// The CSR's RDNs come first, unchanged.
	if !bytes.Contains(c.RawSubject, csr.RawSubject[2:]) {
		t.Error("CSR RDNs not kept verbatim")
	}
}

func TestReenroll(t *testing.T) {
	p := sharedPKI(t)
	id := identityFor(p.idevid, "ACME-0001")
	s := newTestServer(t, &fakeAuthorizer{id: id}, &fakeRecorder{})
	// First enrollment: a subject in non-Go order (CN before O).
	first, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		RawSubject: mustName(t, pkix.RDNSequence{
			{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "kitchen"}},
			{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Acme"}},
		}),
	}, newP256(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone, first))
	if err != nil {
		t.Fatal(err)
	}
	ldevid, err := x509.ParseCertificate(resp.Payload)
	if err != nil {
		t.Fatal(err)
	}
	peer := []*x509.Certificate{ldevid, p.issuing}

	tests := []struct {
		name    string
		subject pkix.Name
		want    error
	}{
		// Go re-encodes ldevid.Subject in its own order: still the same name.
		{"current subject", ldevid.Subject, nil},
		{"current subject without serial", pkix.Name{CommonName: "kitchen", Organization: []string{"Acme"}}, nil},
		{"other CN", pkix.Name{CommonName: "garage", Organization: []string{"Acme"}, SerialNumber: "ACME-0001"}, ErrSubjectMismatch},
		{"extra attribute", pkix.Name{CommonName: "kitchen", Organization: []string{"Acme"}, Country: []string{"NL"}}, ErrSubjectMismatch},
		{"other serial", pkix.Name{CommonName: "kitchen", Organization: []string{"Acme"}, SerialNumber: "X"}, ErrSerialMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &fakeRecorder{}
			authz := &fakeAuthorizer{id: id}
			s := newTestServer(t, authz, rec)
			key := newP256(t)
			resp, err := serve(t, s, postReq(PathSren, peer, coap.FormatPKCS10, coap.FormatNone, mustCSR(t, key, tc.subject)))
			if len(authz.calls) != 1 || authz.calls[0] != Reenroll {
				t.Errorf("authorizer calls %v, want [reenroll]", authz.calls)
			}
			if tc.want != nil {
				if code, _ := coap.CodeOf(err); code != codes.BadRequest || !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want 4.00 %v", err, tc.want)
				}
				if rec.count() != 0 {
					t.Error("recorder called")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(resp.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.RawSubject, ldevid.RawSubject) {
				t.Errorf("renewed subject %q, want %q verbatim", c.Subject, ldevid.Subject)
			}
			if !samePublicKey(c.PublicKey, key.Public()) || c.SerialNumber.Cmp(ldevid.SerialNumber) == 0 {
				t.Error("renewal must carry the new key and a new serial")
			}
			if rec.count() != 1 || rec.ops[0] != Reenroll {
				t.Errorf("recorder ops %v", rec.ops)
			}
		})
	}
}

func mustName(t *testing.T, rdn pkix.RDNSequence) []byte {
	t.Helper()
	b, err := asn1.Marshal(rdn)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var oidThreadDomain = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 44970, 1}

func TestTemplateHook(t *testing.T) {
	p := sharedPKI(t)
	hook := func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidThreadDomain, Value: []byte{0x0c, 0x03, 'd', 'o', 'm'}})
		c.NotAfter = c.NotBefore.Add(24 * time.Hour)
		// What a hook may not do:
		c.IsCA = true
		c.Subject = pkix.Name{CommonName: "evil"}
		c.RawSubject = []byte{0x30, 0x00}
	}
	s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, &fakeRecorder{}, WithTemplate(hook))
	resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone,
		mustCSR(t, newP256(t), p.idevid.Subject)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(resp.Payload)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range c.Extensions {
		found = found || e.Id.Equal(oidThreadDomain)
	}
	if !found {
		t.Error("extension from the hook missing")
	}
	if c.IsCA || c.Subject.SerialNumber != "ACME-0001" || c.Subject.CommonName != "Acme sensor" {
		t.Errorf("hook overrode enforced fields: CA=%v subject %q", c.IsCA, c.Subject)
	}
	if got := c.NotAfter.Sub(c.NotBefore); got != 24*time.Hour {
		t.Errorf("validity %v, want the hook's 24h", got)
	}
}

func TestValidityCappedByCA(t *testing.T) {
	p, err := newTestPKI(testNow, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(p.ca(), WithClock(fixedClock), WithValidity(365*24*time.Hour),
		WithAuthorizer(&fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}), WithRecorder(&fakeRecorder{}))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone,
		mustCSR(t, newP256(t), p.idevid.Subject)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(resp.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotAfter.Equal(p.issuing.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", c.NotAfter, p.issuing.NotAfter)
	}
}

func TestCrts(t *testing.T) {
	p := sharedPKI(t)
	s := newTestServer(t, &fakeAuthorizer{}, &fakeRecorder{})
	idevid := []*x509.Certificate{p.idevid}
	tests := []struct {
		name   string
		accept int
		format int
		certs  []*x509.Certificate
	}{
		{"no accept: issuing CA", coap.FormatNone, coap.FormatPKIXCert, []*x509.Certificate{p.issuing}},
		{"287: issuing CA", coap.FormatPKIXCert, coap.FormatPKIXCert, []*x509.Certificate{p.issuing}},
		{"62: hierarchy, issuing CA first", coap.FormatMultipartCore, coap.FormatMultipartCore, []*x509.Certificate{p.issuing, p.root}},
		{"281: hierarchy in PKCS#7", coap.FormatPKCS7CertsOnly, coap.FormatPKCS7CertsOnly, []*x509.Certificate{p.issuing, p.root}},
	}
	etags := map[string]int{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := serve(t, s, getReq(PathCrts, idevid, tc.accept))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != codes.Content || resp.ContentFormat != tc.format {
				t.Fatalf("got %v CF %d, want 2.05 CF %d", resp.Code, resp.ContentFormat, tc.format)
			}
			certs, err := ParseCerts(resp.ContentFormat, resp.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != len(tc.certs) {
				t.Fatalf("%d certificates, want %d", len(certs), len(tc.certs))
			}
			for i := range certs {
				if !certs[i].Equal(tc.certs[i]) {
					t.Errorf("certificate %d is %q, want %q", i, certs[i].Subject, tc.certs[i].Subject)
				}
			}
			etag := etagOf(t, resp.Options)
			etags[string(etag)] = resp.ContentFormat

			// The same ETag back: 2.03 Valid, no payload, the ETag again.
			req := getReq(PathCrts, idevid, tc.accept)
			req.Options = message.Options{{ID: message.ETag, Value: []byte("stale")}, {ID: message.ETag, Value: etag}}
			valid, err := serve(t, s, req)
			if err != nil {
				t.Fatal(err)
			}
			if valid.Code != codes.Valid || len(valid.Payload) != 0 || !bytes.Equal(etagOf(t, valid.Options), etag) {
				t.Errorf("revalidation: %v with %d bytes", valid.Code, len(valid.Payload))
			}
		})
	}
	if len(etags) != 3 {
		t.Errorf("%d distinct ETags for 3 representations", len(etags))
	}

	// Stable: another server over the same CA set tags the same way.
	again := newTestServer(t, &fakeAuthorizer{}, &fakeRecorder{})
	r1, _ := serve(t, s, getReq(PathCrts, idevid, coap.FormatMultipartCore))
	r2, _ := serve(t, again, getReq(PathCrts, idevid, coap.FormatMultipartCore))
	if !bytes.Equal(etagOf(t, r1.Options), etagOf(t, r2.Options)) {
		t.Error("ETag not stable across servers")
	}
}

func etagOf(t *testing.T, opts message.Options) []byte {
	t.Helper()
	for _, o := range opts {
		if o.ID == message.ETag {
			if len(o.Value) < 1 || len(o.Value) > 8 {
				t.Fatalf("ETag of %d bytes", len(o.Value))
			}
			return o.Value
		}
	}
	t.Fatal("no ETag option")
	return nil
}

func TestCrtsAndAttRefusals(t *testing.T) {
	p := sharedPKI(t)
	s := newTestServer(t, &fakeAuthorizer{}, &fakeRecorder{})
	idevid := []*x509.Certificate{p.idevid}
	tests := []struct {
		name string
		req  *coap.Request
		code codes.Code
		want error
	}{
		{"crts without client certificate", getReq(PathCrts, nil, coap.FormatNone), codes.Unauthorized, ErrUnauthenticated},
		{"crts accept cbor", getReq(PathCrts, idevid, coap.FormatCBOR), codes.NotAcceptable, ErrAccept},
		{"crts accept csrattrs", getReq(PathCrts, idevid, coap.FormatCSRAttrs), codes.NotAcceptable, ErrAccept},
		{"att without client certificate", getReq(PathAtt, nil, coap.FormatNone), codes.Unauthorized, ErrUnauthenticated},
		{"att accept 287", getReq(PathAtt, idevid, coap.FormatPKIXCert), codes.NotAcceptable, ErrAccept},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := serve(t, s, tc.req)
			if resp != nil {
				t.Fatalf("answered %v", resp.Code)
			}
			if code, _ := coap.CodeOf(err); code != tc.code || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v %v", err, tc.code, tc.want)
			}
		})
	}
}

func TestAtt(t *testing.T) {
	p := sharedPKI(t)
	s := newTestServer(t, &fakeAuthorizer{}, &fakeRecorder{})
	for _, accept := range []int{coap.FormatNone, coap.FormatCSRAttrs} {
		resp, err := serve(t, s, getReq(PathAtt, []*x509.Certificate{p.idevid}, accept))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != codes.Content || resp.ContentFormat != coap.FormatCSRAttrs {
			t.Fatalf("got %v CF %d", resp.Code, resp.ContentFormat)
		}
		attrs, err := ParseCSRAttrs(resp.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(attrs) != 2 || !attrs[0].OID.Equal(OIDECDSAWithSHA256) || !attrs[1].OID.Equal(OIDECPublicKey) {
			t.Errorf("attrs = %+v", attrs)
		}
	}
}

func TestRegisterDiscovery(t *testing.T) {
	s := newTestServer(t, &fakeAuthorizer{}, &fakeRecorder{})
	m := coap.NewMux()
	s.Register(m)
	want := `</.well-known/est>;rt=ace.est,` +
		`</.well-known/est/crts>;rt=ace.est.crts;ct="62 281 287",` +
		`</.well-known/est/sen>;rt=ace.est.sen;ct="281 287",` +
		`</.well-known/est/sren>;rt=ace.est.sren;ct="281 287",` +
		`</.well-known/est/att>;rt=ace.est.att;ct=285`
	if got := m.Links([]string{"rt=ace.est*"}); got != want {
		t.Errorf("links:\n got %s\nwant %s", got, want)
	}
	// Methods: /sen is POST only, /crts GET only (the mux answers 4.05).
	for _, r := range []*coap.Request{
		getReq(PathSen, nil, coap.FormatNone),
		postReq(PathCrts, nil, coap.FormatNone, coap.FormatNone, nil),
	} {
		if _, err := m.ServeCoAP(context.Background(), r); func() codes.Code { c, _ := coap.CodeOf(err); return c }() != codes.MethodNotAllowed {
			t.Errorf("%v %s: %v, want 4.05", r.Method, r.Path, err)
		}
	}
}

func TestNewServerValidation(t *testing.T) {
	p := sharedPKI(t)
	other, err := newTestPKI(testNow, time.Hour*24*365)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := newTestPKI(testNow.Add(-3*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	authz, rec := WithAuthorizer(&fakeAuthorizer{}), WithRecorder(&fakeRecorder{})
	reg := prometheus.NewRegistry()
	if _, err := NewServer(p.ca(), authz, rec, WithMetrics(reg)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ca   CA
		opts []Option
	}{
		{"no authorizer", p.ca(), []Option{rec}},
		{"no recorder", p.ca(), []Option{authz}},
		{"nil authorizer", p.ca(), []Option{WithAuthorizer(nil), rec}},
		{"nil recorder", p.ca(), []Option{authz, WithRecorder(nil)}},
		{"no CA certificate", CA{Key: p.issuingKey}, []Option{authz, rec}},
		{"no CA key", CA{Cert: p.issuing}, []Option{authz, rec}},
		{"key of another CA", CA{Cert: p.issuing, Key: other.issuingKey}, []Option{authz, rec}},
		{"not a CA", CA{Cert: p.idevid, Key: p.idevidKey}, []Option{authz, rec}},
		{"chain not starting with the CA", CA{Cert: p.issuing, Key: p.issuingKey, Chain: []*x509.Certificate{p.root}}, []Option{authz, rec}},
		{"chain out of order", CA{Cert: p.issuing, Key: p.issuingKey, Chain: []*x509.Certificate{p.issuing, other.root}}, []Option{authz, rec}},
		{"expired CA", expired.ca(), []Option{authz, rec, WithClock(fixedClock)}},
		{"nil clock", p.ca(), []Option{authz, rec, WithClock(nil)}},
		{"nil rand", p.ca(), []Option{authz, rec, WithRand(nil)}},
		{"zero validity", p.ca(), []Option{authz, rec, WithValidity(0)}},
		{"validity of a century", p.ca(), []Option{authz, rec, WithValidity(100 * 365 * 24 * time.Hour)}},
		{"nil template hook", p.ca(), []Option{authz, rec, WithTemplate(nil)}},
		{"nil registerer", p.ca(), []Option{authz, rec, WithMetrics(nil)}},
		{"metrics registered twice", p.ca(), []Option{authz, rec, WithMetrics(reg)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(tc.ca, tc.opts...)
			if s != nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("NewServer = %v, %v; want ErrConfig", s, err)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	p := sharedPKI(t)
	reg := prometheus.NewRegistry()
	s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, &fakeRecorder{}, WithMetrics(reg))
	csr := mustCSR(t, newP256(t), p.idevid.Subject)
	idevid := []*x509.Certificate{p.idevid}
	if _, err := serve(t, s, postReq(PathSen, idevid, coap.FormatPKCS10, coap.FormatNone, csr)); err != nil {
		t.Fatal(err)
	}
	if _, err := serve(t, s, postReq(PathSen, idevid, coap.FormatCBOR, coap.FormatNone, csr)); err == nil {
		t.Fatal("want an error")
	}
	if _, err := serve(t, s, postReq(PathSren, idevid, coap.FormatPKCS10, coap.FormatNone, []byte{0x30})); err == nil {
		t.Fatal("want an error")
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"tumbler_est_issued_total,op=enroll":                        1,
		"tumbler_est_refused_total,op=enroll,reason=content_format": 1,
		"tumbler_est_refused_total,op=reenroll,reason=bad_csr":      1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// Requests run concurrently; the race detector checks the shared state
// (rand, metrics, precomputed payloads).
func TestEnrollConcurrent(t *testing.T) {
	p := sharedPKI(t)
	rec := &fakeRecorder{}
	s := newTestServer(t, &fakeAuthorizer{id: identityFor(p.idevid, "ACME-0001")}, rec,
		WithRand(rand.Reader), WithMetrics(prometheus.NewRegistry()))
	csr := mustCSR(t, newP256(t), p.idevid.Subject)
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := serve(t, s, postReq(PathSen, []*x509.Certificate{p.idevid}, coap.FormatPKCS10, coap.FormatNone, csr))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	seen := map[string]bool{}
	for _, c := range rec.certs {
		seen[c.SerialNumber.String()] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct serials for %d certificates", len(seen), n)
	}
}
