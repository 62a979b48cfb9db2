package registrar

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/gateway/est"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/masa"
)

// masaFunc adapts a function to MASAClient.
type masaFunc func(ctx context.Context, url string, rvr []byte) ([]byte, error)

func (f masaFunc) RequestVoucher(ctx context.Context, url string, rvr []byte) ([]byte, error) {
	return f(ctx, url, rvr)
}

type fixture struct {
	r        *Registrar
	s        *store.Store
	m        *masa.MASA
	regChain []*x509.Certificate
	masa     masaFunc // what the registrar calls; defaults to m
}

type device struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (d device) peer() coap.Peer { return coap.Peer{Chain: []*x509.Certificate{d.cert}, Session: "s1"} }

func newFixture(t *testing.T, policy Policy) *fixture {
	t.Helper()
	now := time.Now()
	mfrKey, _ := pki.GenerateKey(nil)
	mfr, err := pki.NewCA(now, mfrKey, pki.Profile{Subject: pkix.Name{CommonName: "Test Manufacturer"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := masa.New(mfr, mfrKey, "masa.test:9443", masa.FirstClaim, "")
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := pki.GenerateKey(nil)
	ca, _ := pki.NewCA(now, caKey, pki.Profile{Subject: pkix.Name{CommonName: "Test Domain CA"}})
	regKey, _ := pki.GenerateKey(nil)
	reg, err := pki.NewRegistrarCert(now, &pki.Issuer{Cert: ca, Key: caKey}, regKey.Public(), pki.Profile{Subject: pkix.Name{CommonName: "Test Registrar"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{s: s, m: m, regChain: []*x509.Certificate{reg, ca}}
	f.masa = func(ctx context.Context, _ string, rvr []byte) ([]byte, error) {
		return m.RequestVoucher(ctx, rvr, reg)
	}
	f.r, err = New(Config{Chain: f.regChain, Key: regKey, Manufacturers: []*x509.Certificate{mfr}, Policy: policy,
		MASA: masaFunc(func(ctx context.Context, url string, rvr []byte) ([]byte, error) { return f.masa(ctx, url, rvr) }), Store: s})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) device(t *testing.T, serial string) device {
	t.Helper()
	c, k, err := f.m.IssueIDevID(serial)
	if err != nil {
		t.Fatal(err)
	}
	return device{cert: c, key: k}
}

func proximity() *voucher.Assertion { a := voucher.Proximity; return &a }

// pvr builds a signed PVR; mutate edits the request before signing.
func (f *fixture) pvr(t *testing.T, d device, mutate func(*voucher.Request)) []byte {
	t.Helper()
	r := &voucher.Request{Assertion: proximity(), Nonce: []byte("12345678"), SerialNumber: d.cert.Subject.SerialNumber,
		ProximityRegistrarCert: f.regChain[0].Raw, CreatedOn: time.Now().UTC().Truncate(time.Second)}
	if mutate != nil {
		mutate(r)
	}
	b, err := voucher.SignRequest(nil, d.key, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rv(peer coap.Peer, cf int, payload []byte) *coap.Request {
	return &coap.Request{Method: codes.POST, Path: PathRV, ContentFormat: cf, Accept: coap.FormatNone, Payload: payload, Peer: peer}
}

func TestVoucherRequestAndEnrollment(t *testing.T) {
	f := newFixture(t, Open)
	ctx := ctxT(t)
	d := f.device(t, "SN-OK")
	for _, cf := range []int{coap.FormatVoucherCOSE, coap.FormatCOSESign1} {
		resp, err := f.r.serveRV(ctx, rv(d.peer(), cf, f.pvr(t, d, nil)))
		if err != nil {
			t.Fatalf("CF %d: %v", cf, err)
		}
		if resp.Code != codes.Changed || resp.ContentFormat != coap.FormatVoucherCOSE {
			t.Fatalf("CF %d: %v %d", cf, resp.Code, resp.ContentFormat)
		}
		msg, err := cose.Parse(resp.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.X5BagRaw()) != 0 {
			t.Error("unprotected x5bag not stripped")
		}
		if err := msg.Verify(f.m.CA().PublicKey); err != nil {
			t.Errorf("stripped voucher does not verify: %v", err)
		}
	}
	dev, err := f.s.Device(ctx, pki.DeviceID(d.cert))
	if err != nil || dev.State != store.StateVoucher {
		t.Fatalf("device %+v %v", dev, err)
	}
	status, _ := (&voucher.Status{Version: 1, Status: true}).MarshalCBOR()
	if _, err := f.r.serveVS(ctx, &coap.Request{Method: codes.POST, ContentFormat: coap.FormatCBOR, Payload: status, Peer: d.peer()}); err != nil {
		t.Fatal(err)
	}
	id, err := f.r.Authorize(ctx, d.peer(), est.Enroll)
	if err != nil || id.Serial != "SN-OK" {
		t.Fatalf("authorize: %+v %v", id, err)
	}
	if dev, _ := f.s.Device(ctx, pki.DeviceID(d.cert)); dev.State != store.StateVoucherAccepted {
		t.Errorf("state after /vs: %s", dev.State)
	}
}

// Every refusal has its code and sentinel, and writes no device state.
func TestVoucherRequestRefusals(t *testing.T) {
	f := newFixture(t, Open)
	ctx := ctxT(t)
	d := f.device(t, "SN-1")
	other := f.device(t, "SN-2")
	deep := bytes.Repeat([]byte{0x81}, 100) // 100 nested arrays
	huge := make([]byte, cose.MaxMessageSize+1)
	for _, tc := range []struct {
		name string
		req  *coap.Request
		code codes.Code
		err  error
	}{
		{"unsupported content format", rv(d.peer(), coap.FormatCBOR, f.pvr(t, d, nil)), codes.UnsupportedMediaType, ErrContentFormat},
		{"unacceptable accept", func() *coap.Request {
			r := rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, nil))
			r.Accept = coap.FormatJSON
			return r
		}(), codes.NotAcceptable, ErrAccept},
		{"no client certificate", rv(coap.Peer{}, coap.FormatVoucherCOSE, f.pvr(t, d, nil)), codes.Unauthorized, ErrNotPledge},
		{"LDevID-style peer (domain CA)", rv(coap.Peer{Chain: f.regChain}, coap.FormatVoucherCOSE, f.pvr(t, d, nil)), codes.Forbidden, ErrNotPledge},
		{"wrong signature", rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, other, func(r *voucher.Request) { r.SerialNumber = "SN-1" })), codes.Forbidden, cose.ErrBadSignature},
		{"serial mismatch", rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, func(r *voucher.Request) { r.SerialNumber = "SN-X" })), codes.Forbidden, voucher.ErrSerialMismatch},
		{"missing nonce", rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, func(r *voucher.Request) { r.Nonce = nil })), codes.BadRequest, voucher.ErrNonceMissing},
		{"other registrar pinned", rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, func(r *voucher.Request) { r.ProximityRegistrarCert = f.m.CA().Raw })), codes.Unauthorized, voucher.ErrProximityMismatch},
		{"not COSE", rv(d.peer(), coap.FormatVoucherCOSE, []byte("hello")), codes.BadRequest, ErrMalformed},
		{"deeply nested CBOR", rv(d.peer(), coap.FormatVoucherCOSE, deep), codes.BadRequest, cose.ErrMalformed},
		{"oversize", rv(d.peer(), coap.FormatVoucherCOSE, huge), codes.BadRequest, cose.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.r.serveRV(ctx, tc.req)
			if code, _ := coap.CodeOf(err); code != tc.code {
				t.Errorf("code %v, want %v (%v)", code, tc.code, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("err %v, want %v", err, tc.err)
			}
		})
	}
	if n, _ := f.s.CountByState(ctx); len(n) != 0 {
		t.Errorf("refused requests wrote device state: %v", n)
	}
}

func TestMASAFailures(t *testing.T) {
	f := newFixture(t, Open)
	ctx := ctxT(t)
	d := f.device(t, "SN-M")
	for _, tc := range []struct {
		name string
		masa masaFunc
		code codes.Code
		err  error
	}{
		{"down", func(context.Context, string, []byte) ([]byte, error) {
			return nil, errors.Join(ErrMASAUnavailable, errors.New("connection refused"))
		}, codes.ServiceUnavailable, ErrMASAUnavailable},
		{"refusing", func(context.Context, string, []byte) ([]byte, error) {
			return nil, &MASAError{Status: 403, Reason: "device owned by another domain"}
		}, codes.Forbidden, ErrMASARefused},
		{"unknown device", func(context.Context, string, []byte) ([]byte, error) {
			return nil, &MASAError{Status: 404, Reason: "device not made by this manufacturer"}
		}, codes.NotFound, ErrMASARefused},
		{"garbage voucher", func(context.Context, string, []byte) ([]byte, error) { return []byte{0xd2, 0x84}, nil }, codes.BadGateway, ErrBadVoucher},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.masa = tc.masa
			_, err := f.r.serveRV(ctx, rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, nil)))
			code, diag := coap.CodeOf(err)
			if code != tc.code || !errors.Is(err, tc.err) {
				t.Errorf("got %v %q (%v), want %v %v", code, diag, err, tc.code, tc.err)
			}
		})
	}
	if n, _ := f.s.CountByState(ctx); len(n) != 0 {
		t.Errorf("MASA failures wrote device state: %v", n)
	}
	// The pledge retries once the MASA is back.
	f.masa = func(ctx context.Context, _ string, rvr []byte) ([]byte, error) {
		return f.m.RequestVoucher(ctx, rvr, f.regChain[0])
	}
	if _, err := f.r.serveRV(ctx, rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, nil))); err != nil {
		t.Fatalf("retry after MASA recovery: %v", err)
	}
}

func TestExpectedPolicy(t *testing.T) {
	f := newFixture(t, Expected)
	ctx := ctxT(t)
	d, e := f.device(t, "SN-NEW"), f.device(t, "SN-KNOWN")
	if err := f.s.Update(ctx, func(tx *store.Tx) error { return tx.AddExpected(store.Expected{Serial: "SN-KNOWN"}) }); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.serveRV(ctx, rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, nil)))
	if code, diag := coap.CodeOf(err); code != codes.Forbidden || !errors.Is(err, ErrPolicy) || diag != "device not expected by this domain" {
		t.Errorf("unexpected device: %v %q %v", code, diag, err)
	}
	if _, err := f.r.serveRV(ctx, rv(e.peer(), coap.FormatVoucherCOSE, f.pvr(t, e, nil))); err != nil {
		t.Errorf("expected device refused: %v", err)
	}
}

func TestTelemetryAndEnrollGuards(t *testing.T) {
	f := newFixture(t, Open)
	ctx := ctxT(t)
	d := f.device(t, "SN-T")
	ok, _ := (&voucher.Status{Version: 1, Status: true}).MarshalCBOR()
	vs := func(cf int, b []byte) error {
		_, err := f.r.serveVS(ctx, &coap.Request{Method: codes.POST, ContentFormat: cf, Payload: b, Peer: d.peer()})
		return err
	}
	if err := vs(coap.FormatCBOR, ok); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("/vs before any voucher: %v", err)
	}
	if _, err := f.r.Authorize(ctx, d.peer(), est.Enroll); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("/sen before any voucher: %v", err)
	}
	if _, err := f.r.serveRV(ctx, rv(d.peer(), coap.FormatVoucherCOSE, f.pvr(t, d, nil))); err != nil {
		t.Fatal(err)
	}
	if err := vs(coap.FormatJSON, []byte(`{"version":1,"status":true}`)); !errors.Is(err, ErrContentFormat) {
		t.Errorf("/vs JSON: %v", err)
	}
	bad, _ := cbor.Marshal(map[string]any{"version": 2, "status": true})
	if err := vs(coap.FormatCBOR, bad); !errors.Is(err, voucher.ErrStatusVersion) {
		t.Errorf("/vs version 2: %v", err)
	}
	rejected, _ := (&voucher.Status{Version: 1, Status: false, Reason: "pin mismatch"}).MarshalCBOR()
	if err := vs(coap.FormatCBOR, rejected); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Authorize(ctx, d.peer(), est.Enroll); !errors.Is(err, ErrState) {
		t.Errorf("/sen after the pledge rejected the voucher: %v", err)
	}
	// /es without an enrollment does not fit the state: refused, not stored.
	_, err := f.r.serveES(ctx, &coap.Request{Method: codes.POST, ContentFormat: coap.FormatCBOR, Payload: ok, Peer: d.peer()})
	if code, _ := coap.CodeOf(err); code != codes.Forbidden || !errors.Is(err, ErrState) {
		t.Errorf("/es after a rejected voucher: %v", err)
	}
	tm, _ := f.s.Telemetry(ctx, pki.DeviceID(d.cert))
	if len(tm) != 1 || tm[0].Reason != "pin mismatch" {
		t.Errorf("telemetry stored: %+v", tm)
	}
}
