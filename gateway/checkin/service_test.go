package checkin

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/oscore"
	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	svc   *Service
	store *store.Store
	clk   *clock
	reg   *prometheus.Registry
	h     coap.Handler // the plain port
	dev   store.Device
}

var peerLDevID = coap.Peer{Session: "dtls-1"}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key, _ := pki.GenerateKey(nil)
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	j, err := journal.New(ctx, s, key, journal.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	dev := store.Device{ID: sha256.Sum256([]byte("idevid")), Serial: "SN-1", IDevID: []byte("idevid"), State: store.StateActive}
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.PutDevice(dev) }); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Classes["default"] = Class{Interval: 7 * 24 * time.Hour, Grace: 24 * time.Hour}
	reg := prometheus.NewRegistry()
	identify := func(ctx context.Context, p coap.Peer) (store.DeviceID, error) {
		if p.Session != peerLDevID.Session {
			return store.DeviceID{}, coap.Errorf(codes.Forbidden, "LDevID required", ErrNotEnrolled)
		}
		return dev.ID, nil
	}
	svc, err := New(cfg, s, j, identify, WithClock(clk.now), WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, store: s, clk: clk, reg: reg, h: svc.Dispatch(coap.NewMux()), dev: dev}
}

// provision runs POST /t/oscore and returns the device's client context.
func (f *fixture) provision(t *testing.T) *oscore.Context {
	t.Helper()
	resp, err := f.svc.serveProvision(context.Background(), &coap.Request{Method: codes.POST, Path: PathProvision,
		ContentFormat: coap.FormatNone, Accept: coap.FormatCBOR, Peer: peerLDevID})
	if err != nil {
		t.Fatal(err)
	}
	var m map[int][]byte
	if err := cose.Unmarshal(resp.Payload, &m); err != nil {
		t.Fatal(err)
	}
	if len(m[2]) != 16 || len(m[5]) != 8 || len(m[7]) == 0 || m[8] == nil || len(m[8]) != 0 {
		t.Fatalf("context %x", m)
	}
	oc, err := oscore.NewContext(oscore.Params{MasterSecret: m[2], MasterSalt: m[5], SenderID: m[7], RecipientID: m[8]})
	if err != nil {
		t.Fatal(err)
	}
	return oc
}

func payload(t *testing.T, m map[int]any) []byte {
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var good = map[int]any{1: 3600, 2: "1.2.3", 3: 80, 4: 2, 9: "kept"}

// protect builds an outer check-in request from the device's context.
func protect(t *testing.T, oc *oscore.Context, body []byte) (*coap.Request, *oscore.Exchange) {
	t.Helper()
	r, ex, err := oscore.Client{Ctx: oc}.Protect(&coap.Request{Method: codes.POST, Path: PathCheckin, ContentFormat: coap.FormatCBOR, Accept: coap.FormatNone, Payload: body})
	if err != nil {
		t.Fatal(err)
	}
	return r, ex
}

func (f *fixture) records(t *testing.T) []store.Record {
	r, err := f.store.Records(context.Background(), store.RecordFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckinRecordedThenAcknowledged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	oc := f.provision(t)
	req, ex := protect(t, oc, payload(t, good))
	outer, err := f.h.ServeCoAP(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := oscore.Client{Ctx: oc}.Unprotect(outer, ex)
	if err != nil {
		t.Fatal(err)
	}
	var due map[int]uint64
	if inner.Code != codes.Changed || cbor.Unmarshal(inner.Payload, &due) != nil || due[1] != 7*24*3600 {
		t.Fatalf("response %v %x", inner.Code, inner.Payload)
	}
	recs := f.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	s, err := record.Parse(recs[0].COSE)
	if err != nil {
		t.Fatal(err)
	}
	var body record.CheckInBody
	if err := s.Record.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if body.Uptime != 3600 || body.Firmware != "1.2.3" || *body.Battery != 80 || body.OSCORESeq == nil || *body.OSCORESeq != 0 || len(body.Extra) != 1 {
		t.Errorf("body %+v", body)
	}
	d, _ := f.store.Device(ctx, f.dev.ID)
	if !d.LastCheckin.Equal(f.clk.now().Truncate(time.Second)) || !d.DueAt.Equal(d.LastCheckin.Add(7*24*time.Hour)) {
		t.Errorf("schedule %+v", d)
	}
	c, _ := f.store.OSCOREContext(ctx, f.dev.ID)
	if !c.HasReplay || !oscore.WindowState(oscore.WindowState{Highest: c.ReplayHigh, Bitmap: c.ReplayBitmap}).Seen(0) {
		t.Errorf("replay window not persisted with the record: %+v", c)
	}
}

// Each bad check-in gets its RFC 8613 answer, is counted, and writes
// nothing.
func TestCheckinRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	oc := f.provision(t)
	// A first good check-in, to replay.
	first, _ := protect(t, oc, payload(t, good))
	if _, err := f.h.ServeCoAP(ctx, first); err != nil {
		t.Fatal(err)
	}
	kid := oc.SenderID()
	// A fresh sequence number, so that the replay check (§8.2, before
	// decryption) passes and decryption is what fails.
	wrongKey, _ := oscore.NewContext(oscore.Params{MasterSecret: make([]byte, 16), SenderID: kid, RecipientID: []byte{}}, oscore.WithSenderSequence(100))
	unknown, _ := oscore.NewContext(oscore.Params{MasterSecret: make([]byte, 16), SenderID: []byte{0x77, 0x77}, RecipientID: []byte{}})
	tampered, _ := protect(t, oc, payload(t, good))
	tampered.Payload[3] ^= 0x40
	plain := &coap.Request{Method: codes.POST, Path: PathCheckin, ContentFormat: coap.FormatCBOR, Accept: coap.FormatNone, Payload: payload(t, good)}
	wrong, _ := protect(t, wrongKey, payload(t, good))
	stranger, _ := protect(t, unknown, payload(t, good))
	for _, tc := range []struct {
		name    string
		req     *coap.Request
		code    codes.Code
		diag    string
		outcome string
	}{
		{"replayed", first, codes.Unauthorized, "Replay detected", "replay"},
		{"tampered ciphertext", tampered, codes.BadRequest, "Decryption failed", "decrypt_failed"},
		{"wrong key", wrong, codes.BadRequest, "Decryption failed", "decrypt_failed"},
		{"unknown kid", stranger, codes.Unauthorized, "Security context not found", "context_not_found"},
		{"no OSCORE option", plain, codes.Unauthorized, "OSCORE required", "not_protected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := outcomes(t, f.reg, tc.outcome)
			resp, err := f.h.ServeCoAP(ctx, tc.req)
			var code codes.Code
			var diag string
			if err != nil {
				code, diag = coap.CodeOf(err)
			} else {
				code, diag = resp.Code, string(resp.Payload)
			}
			if code != tc.code || diag != tc.diag {
				t.Errorf("got %v %q, want %v %q", code, diag, tc.code, tc.diag)
			}
			if after := outcomes(t, f.reg, tc.outcome); after != before+1 {
				t.Errorf("metric %s: %v -> %v", tc.outcome, before, after)
			}
		})
	}
	if n := len(f.records(t)); n != 1 {
		t.Errorf("%d records after refusals, want 1", n)
	}
	// Malformed payload and an inactive device are answered inside OSCORE.
	for _, tc := range []struct {
		name  string
		body  []byte
		setup func()
		code  codes.Code
	}{
		{"malformed payload", []byte{0xa1, 0x01}, nil, codes.BadRequest},
		{"text keys", textKeys(t), nil, codes.BadRequest},
		{"decommissioned device", payload(t, good), func() {
			f.store.Update(ctx, func(tx *store.Tx) error { return tx.SetState(f.dev.ID, store.State("decommissioned")) })
			f.svc.Forget(f.dev.ID) // state changes go through the service
		}, codes.Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			req, ex := protect(t, oc, tc.body)
			outer, err := f.h.ServeCoAP(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			inner, err := oscore.Client{Ctx: oc}.Unprotect(outer, ex)
			if err != nil {
				t.Fatal(err)
			}
			if inner.Code != tc.code {
				t.Errorf("inner code %v, want %v (%s)", inner.Code, tc.code, inner.Payload)
			}
		})
	}
	if n := len(f.records(t)); n != 1 {
		t.Errorf("%d records after refusals, want 1", n)
	}
}

// outcomes reads tumbler_oscore_requests_total{outcome}.
func outcomes(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tumbler_oscore_requests_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.Counter.GetValue()
				}
			}
		}
	}
	return 0
}

// One overdue record per missed window; a check-in clears it.
func TestOverdueWindows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	oc := f.provision(t)
	scan := func() int {
		n, err := f.svc.ScanOverdue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := scan(); n != 0 {
		t.Fatalf("overdue right after provisioning: %d", n)
	}
	f.clk.add(8*24*time.Hour + time.Minute) // due + grace passed
	if n := scan(); n != 1 {
		t.Fatalf("first missed window: %d records", n)
	}
	if n := scan(); n != 0 {
		t.Fatalf("same window twice: %d", n)
	}
	f.clk.add(14 * 24 * time.Hour) // two more windows
	if n := scan(); n != 2 {
		t.Fatalf("two more windows: %d", n)
	}
	req, _ := protect(t, oc, payload(t, good))
	if _, err := f.h.ServeCoAP(ctx, req); err != nil {
		t.Fatal(err)
	}
	d, _ := f.store.Device(ctx, f.dev.ID)
	if d.Missed != 0 {
		t.Errorf("missed %d after check-in", d.Missed)
	}
	types := map[string]int{}
	for _, r := range f.records(t) {
		types[r.Type]++
	}
	if types["overdue"] != 3 || types["checkin"] != 1 {
		t.Errorf("records %v", types)
	}
	var ov record.OverdueBody
	recs := f.records(t)
	s, _ := record.Parse(recs[2].COSE)
	if err := s.Record.DecodeBody(&ov); err != nil || ov.Missed != 3 || !ov.LastCheckIn.IsZero() {
		t.Errorf("third overdue body %+v %v", ov, err)
	}
}

func textKeys(t *testing.T) []byte {
	b, err := cbor.Marshal(map[string]any{"uptime": 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
