package masa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/pki"
)

type domain struct {
	ca    *x509.Certificate
	reg   *x509.Certificate
	key   crypto.Signer
	chain [][]byte
}

func newDomain(t *testing.T, name string, cmcRA bool) domain {
	t.Helper()
	now := time.Now()
	caKey, _ := pki.GenerateKey(nil)
	ca, err := pki.NewCA(now, caKey, pki.Profile{Subject: pkix.Name{CommonName: name + " CA"}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(nil)
	var reg *x509.Certificate
	if cmcRA {
		reg, err = pki.NewRegistrarCert(now, &pki.Issuer{Cert: ca, Key: caKey}, key.Public(), pki.Profile{Subject: pkix.Name{CommonName: name + " Registrar"}})
	} else {
		reg, err = pki.NewServerCert(now, &pki.Issuer{Cert: ca, Key: caKey}, key.Public(), pki.Profile{Subject: pkix.Name{CommonName: name + " Server"}}, "x")
	}
	if err != nil {
		t.Fatal(err)
	}
	return domain{ca: ca, reg: reg, key: key, chain: [][]byte{reg.Raw, ca.Raw}}
}

func newMASA(t *testing.T, audit string) *MASA {
	t.Helper()
	key, _ := pki.GenerateKey(nil)
	ca, err := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "Test Manufacturer"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(ca, key, "masa.test", FirstClaim, audit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

type pledge struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newPledge(t *testing.T, m *MASA, serial string) pledge {
	c, k, err := m.IssueIDevID(serial)
	if err != nil {
		t.Fatal(err)
	}
	return pledge{c, k}
}

// rvr builds what a registrar of d sends for p; mutate edits the RVR.
func rvr(t *testing.T, d domain, p pledge, mutatePVR, mutateRVR func(*voucher.Request)) []byte {
	t.Helper()
	prox := voucher.Proximity
	pr := &voucher.Request{Assertion: &prox, Nonce: []byte("nonce-01"), SerialNumber: p.cert.Subject.SerialNumber, ProximityRegistrarPubK: d.reg.RawSubjectPublicKeyInfo}
	if mutatePVR != nil {
		mutatePVR(pr)
	}
	pvr, err := voucher.SignRequest(nil, p.key, pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := voucher.ParseRequest(mustPayload(t, pvr))
	r := voucher.NewRVR(pvr, parsed, p.cert, time.Now())
	if mutateRVR != nil {
		mutateRVR(r)
	}
	out, err := voucher.SignRequest(nil, d.key, r, append(append([][]byte{}, d.chain...), p.cert.Raw))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustPayload(t *testing.T, signed []byte) []byte {
	s, err := voucher.ParseSignedRequest(signed)
	if err != nil {
		t.Fatal(err)
	}
	return s.Sign1.Payload()
}

func TestVoucherIssuedAndOwnership(t *testing.T) {
	m := newMASA(t, "")
	ctx := context.Background()
	a, b := newDomain(t, "A", true), newDomain(t, "B", true)
	p := newPledge(t, m, "SN-1")
	v, err := m.RequestVoucher(ctx, rvr(t, a, p, nil, nil), a.reg)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := voucher.ParseSignedVoucher(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := sv.Verify(m.CA().PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := sv.Voucher.Validate(voucher.PledgeCheck{SerialNumber: "SN-1", Nonce: []byte("nonce-01"), Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pin, _ := sv.Voucher.PinnedCert()
	if !pin.Equal(a.ca) {
		t.Error("voucher does not pin the domain CA")
	}
	if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
		t.Errorf("second domain: %v, want ErrOwned", err)
	}
	if _, err := m.RequestVoucher(ctx, rvr(t, a, p, nil, nil), a.reg); err != nil {
		t.Errorf("owner again: %v", err)
	}
	if ev := m.Audit("SN-1"); len(ev) != 2 || ev[0].Assertion != "proximity" || ev[0].Nonce == nil {
		t.Errorf("audit %+v", ev)
	}
}

func TestVoucherRefusals(t *testing.T) {
	m := newMASA(t, "")
	other := newMASA(t, "")
	ctx := context.Background()
	a := newDomain(t, "A", true)
	noRA := newDomain(t, "NoRA", false)
	p := newPledge(t, m, "SN-2")
	foreign := newPledge(t, other, "SN-F")
	for _, tc := range []struct {
		name   string
		body   []byte
		client *x509.Certificate
		err    error
	}{
		{"garbage", []byte("not cose"), a.reg, ErrMalformed},
		{"signer lacks cmcRA", rvr(t, noRA, p, nil, nil), noRA.reg, ErrRegistrar},
		{"TLS client is not the signer", rvr(t, a, p, nil, nil), noRA.reg, ErrRegistrar},
		{"no TLS client certificate", rvr(t, a, p, nil, nil), nil, ErrRegistrar},
		{"device of another manufacturer", rvr(t, a, foreign, nil, nil), a.reg, ErrUnknownDevice},
		{"no prior PVR", rvr(t, a, p, nil, func(r *voucher.Request) { r.PriorSignedVoucherRequest = nil }), a.reg, ErrPledge},
		{"nonce differs from the PVR", rvr(t, a, p, nil, func(r *voucher.Request) { r.Nonce = []byte("nonce-02") }), a.reg, ErrPledge},
		{"PVR serial differs", rvr(t, a, p, func(r *voucher.Request) { r.SerialNumber = "SN-3" }, nil), a.reg, ErrPledge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.RequestVoucher(ctx, tc.body, tc.client)
			if !errors.Is(err, tc.err) {
				t.Errorf("err %v, want %v", err, tc.err)
			}
		})
	}
	if ev := m.Audit("SN-2"); len(ev) != 0 {
		t.Errorf("refusals were audited: %+v", ev)
	}
}

func TestAuditLogDurableAndTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	key, _ := pki.GenerateKey(nil)
	ca, _ := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "M"}})
	m, err := New(ca, key, "masa.test", FirstClaim, path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newDomain(t, "A", true), newDomain(t, "B", true)
	p := newPledge(t, m, "SN-D")
	if _, err := m.RequestVoucher(context.Background(), rvr(t, a, p, nil, nil), a.reg); err != nil {
		t.Fatal(err)
	}
	m.Close()
	// A crash mid-append leaves a torn last line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"serial":"SN-D","date":`)
	f.Close()
	m2, err := New(ca, key, "masa.test", FirstClaim, path)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if ev := m2.Audit("SN-D"); len(ev) != 1 {
		t.Fatalf("after restart: %+v", ev)
	}
	// Ownership survived the restart.
	if _, err := m2.RequestVoucher(context.Background(), rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
		t.Errorf("ownership lost across restart: %v", err)
	}
	b2, _ := os.ReadFile(path)
	if bytes.Count(b2, []byte("\n")) != 1 || !bytes.HasSuffix(b2, []byte("}\n")) {
		t.Errorf("torn line not truncated: %q", b2)
	}
}

// The HTTP edge: media types, status codes, and the audit log endpoint.
func TestHTTP(t *testing.T) {
	m := newMASA(t, "")
	a, b := newDomain(t, "A", true), newDomain(t, "B", true)
	p := newPledge(t, m, "SN-H")
	srv := httptest.NewUnstartedServer(m.Handler())
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	client := func(d domain) *http.Client {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: d.chain, PrivateKey: d.key}}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	post := func(c *http.Client, path, ct, accept string, body []byte) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	good := rvr(t, a, p, nil, nil)
	for _, tc := range []struct {
		name, ct, accept string
		body             []byte
		status           int
	}{
		{"wrong content type", "application/json", "", good, http.StatusUnsupportedMediaType},
		{"unacceptable", MediaVoucherCOSE, "application/json", good, http.StatusNotAcceptable},
		{"too large", MediaVoucherCOSE, "", make([]byte, MaxRequest+1), http.StatusRequestEntityTooLarge},
		{"malformed", MediaVoucherCOSE, "", []byte{0xd2}, http.StatusBadRequest},
		{"legacy name", MediaVoucherCOSELegacy, MediaVoucherCOSELegacy, good, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(client(a), PathRequestVoucher, tc.ct, tc.accept, tc.body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusOK && resp.Header.Get("Content-Type") != MediaVoucherCOSELegacy {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	resp, body := post(client(b), PathRequestVoucher, MediaVoucherCOSE, "", rvr(t, b, p, nil, nil))
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(body, "device owned by another domain") {
		t.Errorf("other domain: %d %q", resp.StatusCode, body)
	}
	resp, body = post(client(a), PathRequestAuditLog, MediaVoucherCOSE, "", good)
	var log auditResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &log) != nil || len(log.Events) != 1 || log.Version != 1 {
		t.Errorf("audit log: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(client(b), PathRequestAuditLog, MediaVoucherCOSE, "", rvr(t, b, p, nil, nil)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("audit log to a stranger: %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	path, err := Init(dir, "127.0.0.1:9443", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, "127.0.0.1:9443", nil, time.Now()); err == nil {
		t.Error("Init overwrote an existing MASA")
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.EffectiveURL() != "https://127.0.0.1:9443" {
		t.Errorf("url %q", c.EffectiveURL())
	}
	m, _, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	for _, bad := range []string{"policy: everyone\n", "listen: nowhere\n", "colour: blue\n"} {
		p := filepath.Join(t.TempDir(), "masa.yaml")
		os.WriteFile(p, []byte("ca_cert: a\nca_key: b\ntls_cert: c\ntls_key: d\n"+bad), 0o600)
		if _, err := LoadConfig(p); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
