package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// netTimeout bounds every test that uses the network.
const netTimeout = 10 * time.Second

// testContext is t's context with the network test timeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), netTimeout)
	t.Cleanup(cancel)
	return ctx
}

// serveTest serves the API over loopback TCP (httptest) and returns a
// client with token.
func serveTest(t *testing.T, svc ownership.Service, token string) *Client {
	t.Helper()
	ts := httptest.NewServer(newTestServer(t, svc, testConfig()).Handler())
	t.Cleanup(ts.Close)
	c, err := NewClient(ts.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestClientRoutes(t *testing.T) {
	ctx := testContext(t)
	svc := newFakeService()
	c := serveTest(t, svc, adminToken)

	list, err := c.ListDevices(ctx, ownership.ListFilter{State: "active", Overdue: true, Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != deviceB {
		t.Fatalf("ListDevices = %+v, %v", list, err)
	}
	if f := svc.lastRequest("ListDevices").(ownership.ListFilter); !reflect.DeepEqual(f, ownership.ListFilter{State: "active", Overdue: true, Limit: 10}) {
		t.Fatalf("filter %+v", f)
	}
	d, err := c.GetDevice(ctx, deviceA)
	if err != nil || d.ID != deviceA || len(d.Certificates) != 1 || d.LastCheckin == nil {
		t.Fatalf("GetDevice = %+v, %v", d, err)
	}
	er, err := c.Expect(ctx, ownership.ExpectRequest{Authorization: []byte{0xd2, 0x84}})
	if err != nil || er.Serial != "SN-EXPECTED" {
		t.Fatalf("Expect = %+v, %v", er, err)
	}
	if r := svc.lastRequest("Expect").(ownership.ExpectRequest); !bytes.Equal(r.Authorization, []byte{0xd2, 0x84}) {
		t.Fatalf("Expect request %+v", r)
	}
	tr, err := c.Transfer(ctx, deviceA, ownership.TransferRequest{NewOwnerCA: "-----BEGIN CERTIFICATE-----\n..."})
	if err != nil || len(tr.Authorization) == 0 || !tr.NotAfter.Equal(baseTime.Add(7*24*time.Hour)) {
		t.Fatalf("Transfer = %+v, %v", tr, err)
	}
	if r := svc.lastRequest("Transfer").(ownership.TransferRequest); !r.NotAfter.IsZero() {
		t.Fatalf("a zero NotAfter arrived as %v", r.NotAfter)
	}
	rr, err := c.Repossess(ctx, ownership.RepossessRequest{Serial: "SN-1", QRSecret: "00ff", Order: []byte{1}})
	if err != nil || rr.NoticeUntil.IsZero() {
		t.Fatalf("Repossess = %+v, %v", rr, err)
	}
	ack, err := c.Reset(ctx, deviceA, ownership.ResetRequest{Reason: "sold"})
	if err != nil || ack != (Ack{Device: deviceA, Action: ActionReset, Pending: true}) {
		t.Fatalf("Reset = %+v, %v", ack, err)
	}
	if ack, err = c.Decommission(ctx, deviceA, ownership.DecommissionRequest{}); err != nil || ack.Action != ActionDecommission {
		t.Fatalf("Decommission = %+v, %v", ack, err)
	}
	if ack, err = c.Readmit(ctx, deviceA); err != nil || ack.Action != ActionReadmit {
		t.Fatalf("Readmit = %+v, %v", ack, err)
	}
	sink, err := upstream.ParseSinkURL("mqtts://partner:secret@broker.partner.example")
	if err != nil {
		t.Fatal(err)
	}
	until := baseTime.Add(30 * 24 * time.Hour)
	dr, err := c.Delegate(ctx, deviceA, ownership.DelegateRequest{Upstream: sink, Until: until})
	if err != nil || dr.ID != "dlg-1" || !dr.Until.Equal(until) {
		t.Fatalf("Delegate = %+v, %v", dr, err)
	}
	if r := svc.lastRequest("Delegate").(ownership.DelegateRequest); r.Upstream.MQTT == nil || *r.Upstream.MQTT != *sink.MQTT || r.Upstream.Name != sink.Name {
		t.Fatalf("the sink changed on the way: %+v", r.Upstream)
	}
	if ack, err = c.EndDelegation(ctx, deviceA, dr.ID); err != nil || ack.Delegation != dr.ID {
		t.Fatalf("EndDelegation = %+v, %v", ack, err)
	}
	parked, err := c.Parked(ctx, "broker")
	if err != nil || len(parked) != 1 || parked[0].Seq != 7 {
		t.Fatalf("Parked = %+v, %v", parked, err)
	}
	crl, err := c.CRL(ctx)
	if err != nil || !bytes.Equal(crl, fakeCRL) {
		t.Fatalf("CRL = %x, %v", crl, err)
	}
	if m, err := c.Metrics(ctx); err != nil || !bytes.Contains(m, []byte("tumbler_up 1")) {
		t.Fatalf("Metrics = %q, %v", m, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
}

func TestClientServiceErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{
		{"not found", fmt.Errorf("device: %w", ownership.ErrNotFound), 404},
		{"invalid", fmt.Errorf("%w: registrar: not a coaps URI", ownership.ErrInvalid), 400},
		{"conflict", fmt.Errorf("%w: decommissioned", ownership.ErrConflict), 409},
		{"refused", fmt.Errorf("%w: objection by the owner", ownership.ErrRefused), 403},
		{"unavailable", fmt.Errorf("%w: timeout", ownership.ErrUnavailable), 503},
		{"unauthorized", ownership.ErrUnauthorized, 401},
		{"internal", errors.New("boom"), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			svc.failWith = tc.err
			c := serveTest(t, svc, adminToken)
			_, err := c.Transfer(testContext(t), deviceA, ownership.TransferRequest{NewOwnerSPKISHA256: "ab"})
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("Transfer = %v, want *Error with status %d", err, tc.status)
			}
			for _, s := range []error{ownership.ErrNotFound, ownership.ErrInvalid, ownership.ErrConflict, ownership.ErrRefused, ownership.ErrUnavailable, ownership.ErrUnauthorized} {
				if got, want := errors.Is(err, s), errors.Is(tc.err, s); got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
				}
			}
			if tc.status < 500 && tc.status != 401 && ae.Message != tc.err.Error() {
				t.Errorf("message %q, want %q", ae.Message, tc.err.Error())
			}
		})
	}
}

func TestClientAuthErrors(t *testing.T) {
	ctx := testContext(t)
	svc := newFakeService()
	ts := httptest.NewServer(newTestServer(t, svc, testConfig()).Handler())
	defer ts.Close()
	for _, tc := range []struct {
		name  string
		token string
		id    string
		want  error
	}{
		{"no token", "", deviceA, ownership.ErrUnauthorized},
		{"wrong token", "not-a-valid-token-0000", deviceA, ownership.ErrUnauthorized},
		{"delegation on its device", delegToken, deviceA, nil},
		{"delegation on another device", delegToken, deviceB, ownership.ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(ts.URL, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			if _, err := c.GetDevice(ctx, tc.id); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("GetDevice = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestClientUnexpectedResponses(t *testing.T) {
	ctx := testContext(t)
	var followed bool
	mux := http.NewServeMux()
	mux.HandleFunc("/api/devices", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>login</html>")
	})
	mux.HandleFunc("/api/parked", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream proxy down\nmore detail", http.StatusBadGateway)
	})
	mux.HandleFunc("/crl", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { followed = true })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":`)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	c, err := NewClient(ts.URL, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	if _, err := c.ListDevices(ctx, ownership.ListFilter{}); !errors.Is(err, ErrResponse) {
		t.Errorf("HTML answer: %v, want ErrResponse", err)
	}
	_, err = c.Parked(ctx, "")
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Message != "upstream proxy down" || !errors.Is(err, ownership.ErrUnavailable) {
		t.Errorf("text 502: %#v", err)
	}
	if _, err := c.CRL(ctx); !errors.As(err, &ae) || ae.Status != http.StatusFound || followed {
		t.Errorf("redirect: %v (followed %v), want *Error 302, not followed", err, followed)
	}
	if err := c.Health(ctx); !errors.Is(err, ErrResponse) {
		t.Errorf("truncated JSON: %v, want ErrResponse", err)
	}
}

func TestErrorIs(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{
		{400, ownership.ErrInvalid},
		{413, ownership.ErrInvalid},
		{415, ownership.ErrInvalid},
		{401, ownership.ErrUnauthorized},
		{403, ownership.ErrRefused},
		{404, ownership.ErrNotFound},
		{409, ownership.ErrConflict},
		{502, ownership.ErrUnavailable},
		{503, ownership.ErrUnavailable},
		{504, ownership.ErrUnavailable},
		{500, nil},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", &Error{Status: tc.status, Message: "m"})
			for _, s := range []error{ownership.ErrNotFound, ownership.ErrInvalid, ownership.ErrConflict, ownership.ErrRefused, ownership.ErrUnavailable, ownership.ErrUnauthorized} {
				if got := errors.Is(err, s); got != (s == tc.want) {
					t.Errorf("errors.Is(%d, %v) = %v", tc.status, s, got)
				}
			}
		})
	}
}

func TestNewClientRejects(t *testing.T) {
	noPEM := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(noPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, token string
		opts             []ClientOption
	}{
		{"http to a remote host", "http://gateway.example:8484", adminToken, nil},
		{"other scheme", "ftp://127.0.0.1", adminToken, nil},
		{"no host", "https:///api", adminToken, nil},
		{"query", "https://gw.example/?x=1", adminToken, nil},
		{"user info", "https://admin:pw@gw.example", adminToken, nil},
		{"token with a newline", "https://gw.example", "abc\ndef0123456789", nil},
		{"CA file missing", "https://gw.example", adminToken, []ClientOption{WithCAFile(filepath.Join(t.TempDir(), "none.pem"))}},
		{"CA file without PEM", "https://gw.example", adminToken, []ClientOption{WithCAFile(noPEM)}},
		{"roots with own client", "https://gw.example", adminToken, []ClientOption{WithHTTPClient(&http.Client{}), WithRootCAs(x509.NewCertPool())}},
		{"nil client", "https://gw.example", adminToken, []ClientOption{WithHTTPClient(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClient(tc.url, tc.token, tc.opts...); !errors.Is(err, ErrConfig) {
				t.Fatalf("NewClient = %v, want ErrConfig", err)
			}
		})
	}
	for _, u := range []string{"http://127.0.0.1:8484", "http://[::1]:8484/", "http://localhost:8484", "https://gw.example/prefix/"} {
		if _, err := NewClient(u, adminToken); err != nil {
			t.Errorf("NewClient(%q): %v", u, err)
		}
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), netTimeout)
	defer cancel()
	s := newTestServer(t, newFakeService(), testConfig())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { errc <- s.Serve(sctx, ln) }()
	c, err := NewClient("http://"+ln.Addr().String(), adminToken)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := c.ListDevices(ctx, ownership.ListFilter{}); err != nil || len(list) != 2 {
		t.Fatalf("ListDevices = %v, %v", list, err)
	}
	c.CloseIdleConnections()
	stop()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestServeTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), netTimeout)
	defer cancel()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s := newTestServer(t, newFakeService(), cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	base := "https://" + ln.Addr().String()

	c, err := NewClient(base, adminToken, WithCAFile(certFile))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.GetDevice(ctx, deviceB); err != nil || d.ID != deviceB {
		t.Fatalf("GetDevice over TLS = %+v, %v", d, err)
	}
	c.CloseIdleConnections()

	untrusting, err := NewClient(base, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	var verr *tls.CertificateVerificationError
	if err := untrusting.Health(ctx); !errors.As(err, &verr) {
		t.Errorf("Health with the system roots = %v, want a certificate verification error", err)
	}
	untrusting.CloseIdleConnections()

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after Close")
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ctx, ln2); err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
	if err := ln2.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second)); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if _, err := ln2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Serve after Close = %v, want net.ErrClosed", err)
	}
}

// writeTestCert writes a self-signed P-256 certificate for 127.0.0.1 and
// its key to dir.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tumbler admin API test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
