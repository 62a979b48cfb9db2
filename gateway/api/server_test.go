package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// testConfig has two admin tokens.
func testConfig() Config {
	return Config{Tokens: []string{adminToken, otherAdmin}}
}

// metricsStub stands in for the gateway's Prometheus handler.
var metricsStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "tumbler_up 1")
})

// newTestServer builds a Server on svc with the metrics stub.
func newTestServer(t *testing.T, svc ownership.Service, cfg Config, opts ...Option) *Server {
	t.Helper()
	s, err := New(svc, cfg, append([]Option{WithMetricsHandler(metricsStub)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// send runs one request through h. body "" sends none; a token "" no
// Authorization header.
func send(t *testing.T, h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantJSON checks the status and Content-Type and decodes the body into v
// (unless nil).
func wantJSON(t *testing.T, rec *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if v == nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
}

// wantError checks an error response and returns its text.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int) string {
	t.Helper()
	var e errorBody
	wantJSON(t, rec, status, &e)
	if e.Error == "" {
		t.Fatalf("error response without text: %s", rec.Body)
	}
	return e.Error
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"valid", testConfig(), true},
		{"valid with TLS files", Config{Tokens: []string{adminToken}, TLSCertFile: "c.pem", TLSKeyFile: "k.pem"}, true},
		{"no tokens", Config{}, false},
		{"short token", Config{Tokens: []string{"short"}}, false},
		{"token with a space", Config{Tokens: []string{"admin token 0123456789"}}, false},
		{"token with inner =", Config{Tokens: []string{"admin=token0123456789"}}, false},
		{"duplicate tokens", Config{Tokens: []string{adminToken, adminToken}}, false},
		{"cert without key", Config{Tokens: []string{adminToken}, TLSCertFile: "c.pem"}, false},
		{"key without cert", Config{Tokens: []string{adminToken}, TLSKeyFile: "k.pem"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	svc := newFakeService()
	for _, tc := range []struct {
		name string
		svc  ownership.Service
		cfg  Config
		opts []Option
	}{
		{"nil service", nil, testConfig(), nil},
		{"invalid config", svc, Config{}, nil},
		{"nil metrics handler", svc, testConfig(), []Option{WithMetricsHandler(nil)}},
		{"nil health check", svc, testConfig(), []Option{WithHealth(nil)}},
		{"missing TLS files", svc, Config{Tokens: []string{adminToken}, TLSCertFile: t.TempDir() + "/no.pem", TLSKeyFile: t.TempDir() + "/no.key"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.svc, tc.cfg, tc.opts...); !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	devA := "/api/devices/" + deviceA
	for _, tc := range []struct {
		name     string
		method   string
		path     string
		header   string // Authorization
		body     string
		status   int
		wwwAuth  string // WWW-Authenticate on 401
		reaches  string // fake method the request must (or, with a 4xx, must not) reach
		noScope  bool   // the token must not reach Scope
		publicOK bool   // a public route: the body is not JSON
	}{
		{name: "no token", method: "GET", path: "/api/devices", status: 401, wwwAuth: `Bearer realm="tumbler"`, reaches: "ListDevices", noScope: true},
		{name: "basic auth", method: "GET", path: "/api/devices", header: "Basic YWRtaW46YWRtaW4=", status: 401, wwwAuth: `Bearer realm="tumbler"`, reaches: "ListDevices", noScope: true},
		{name: "empty bearer", method: "GET", path: "/api/devices", header: "Bearer ", status: 401, wwwAuth: `Bearer realm="tumbler"`, reaches: "ListDevices", noScope: true},
		{name: "wrong token", method: "GET", path: "/api/devices", header: "Bearer wrong-token-0123456789", status: 401, wwwAuth: `Bearer realm="tumbler", error="invalid_token"`, reaches: "ListDevices"},
		{name: "malformed token", method: "GET", path: "/api/devices", header: "Bearer two words", status: 401, wwwAuth: `Bearer realm="tumbler", error="invalid_token"`, reaches: "ListDevices", noScope: true},
		{name: "admin token", method: "GET", path: "/api/devices", header: "Bearer " + adminToken, status: 200, reaches: "ListDevices", noScope: true},
		{name: "second admin token", method: "GET", path: "/api/devices", header: "Bearer " + otherAdmin, status: 200, reaches: "ListDevices", noScope: true},
		{name: "scheme case-insensitive", method: "GET", path: "/api/devices", header: "bearer " + adminToken, status: 200, reaches: "ListDevices", noScope: true},
		{name: "admin token writes", method: "POST", path: devA + "/reset", header: "Bearer " + adminToken, status: 202, reaches: "Reset", noScope: true},
		{name: "delegation reads its device", method: "GET", path: devA, header: "Bearer " + delegToken, status: 200, reaches: "GetDevice"},
		{name: "delegation reads its device in upper case", method: "GET", path: "/api/devices/" + strings.ToUpper(deviceA), header: "Bearer " + delegToken, status: 200, reaches: "GetDevice"},
		{name: "delegation reads another device", method: "GET", path: "/api/devices/" + deviceB, header: "Bearer " + delegToken, status: 403, reaches: "GetDevice"},
		{name: "delegation lists its devices", method: "GET", path: "/api/devices", header: "Bearer " + delegToken, status: 200, reaches: "ListDevices"},
		{name: "delegation resets its device", method: "POST", path: devA + "/reset", header: "Bearer " + delegToken, status: 403, reaches: "Reset"},
		{name: "delegation decommissions", method: "POST", path: devA + "/decommission", header: "Bearer " + delegToken, body: "{}", status: 403, reaches: "Decommission"},
		{name: "delegation ends a delegation", method: "DELETE", path: devA + "/delegations/dlg-1", header: "Bearer " + delegToken, status: 403, reaches: "EndDelegation"},
		{name: "delegation reads parked", method: "GET", path: "/api/parked", header: "Bearer " + delegToken, status: 403, reaches: "Parked"},
		{name: "delegation reads metrics", method: "GET", path: "/metrics", header: "Bearer " + delegToken, status: 403},
		{name: "metrics without token", method: "GET", path: "/metrics", status: 401, wwwAuth: `Bearer realm="tumbler"`},
		{name: "metrics with admin token", method: "GET", path: "/metrics", header: "Bearer " + adminToken, status: 200, publicOK: true},
		{name: "healthz is public", method: "GET", path: "/healthz", status: 200, noScope: true},
		{name: "crl is public", method: "GET", path: "/crl", status: 200, reaches: "CRL", noScope: true, publicOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			h := newTestServer(t, svc, testConfig()).Handler()
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wwwAuth)
			}
			if !tc.publicOK {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
			}
			if tc.reaches != "" {
				if got, want := svc.called(tc.reaches), tc.status < 300; got != want {
					t.Errorf("service %s called = %v, want %v", tc.reaches, got, want)
				}
			}
			if tc.noScope && svc.called("Scope") {
				t.Error("the token reached Scope")
			}
		})
	}
}

// A delegate's list holds the devices of its scope and nothing else.
func TestDelegateList(t *testing.T) {
	svc := newFakeService()
	h := newTestServer(t, svc, testConfig()).Handler()
	for _, q := range []struct {
		query string
		want  int
	}{{"", 1}, {"?state=decommissioned", 0}} {
		req := httptest.NewRequest("GET", "/api/devices"+q.query, nil)
		req.Header.Set("Authorization", "Bearer "+delegToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var list DeviceList
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
			t.Fatalf("%q: status %d, body %s", q.query, rec.Code, rec.Body)
		}
		if len(list.Devices) != q.want || q.want == 1 && list.Devices[0].ID != deviceA {
			t.Errorf("%q: devices %+v, want %d (device A)", q.query, list.Devices, q.want)
		}
	}

}

func TestAuthScopeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{
		{"unavailable", fmt.Errorf("store busy: %w", ownership.ErrUnavailable), http.StatusServiceUnavailable},
		{"unexpected", errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			svc.scopeErr = tc.err
			rec := send(t, newTestServer(t, svc, testConfig()).Handler(), "GET", "/api/devices/"+deviceA, delegToken, "")
			if msg := wantError(t, rec, tc.status); strings.Contains(msg, "disk") || strings.Contains(msg, "busy") {
				t.Errorf("the cause reached the caller: %q", msg)
			}
			if svc.called("GetDevice") {
				t.Error("GetDevice called after Scope failed")
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	svc := newFakeService()
	h := newTestServer(t, svc, testConfig()).Handler()
	devA := "/api/devices/" + deviceA

	t.Run("list with filter", func(t *testing.T) {
		var got DeviceList
		wantJSON(t, send(t, h, "GET", "/api/devices?state=active&overdue=true&limit=5", adminToken, ""), 200, &got)
		if len(got.Devices) != 1 || got.Devices[0].ID != deviceB {
			t.Fatalf("devices %+v, want only device B", got.Devices)
		}
		if f := svc.lastRequest("ListDevices").(ownership.ListFilter); !reflect.DeepEqual(f, ownership.ListFilter{State: "active", Overdue: true, Limit: 5}) {
			t.Fatalf("filter %+v", f)
		}
	})
	t.Run("empty list is an array", func(t *testing.T) {
		rec := send(t, h, "GET", "/api/devices?state=gone", adminToken, "")
		wantJSON(t, rec, 200, nil)
		if got := strings.TrimSpace(rec.Body.String()); got != `{"devices":[]}` {
			t.Fatalf("body %s", got)
		}
	})
	t.Run("get", func(t *testing.T) {
		var got ownership.DeviceDetail
		wantJSON(t, send(t, h, "GET", devA, adminToken, ""), 200, &got)
		if got.ID != deviceA || got.Serial != "SN-0001" || len(got.Records) != 1 || !bytes.Equal(got.Records[0].COSE, []byte{0xd2, 0x84}) {
			t.Fatalf("device %+v", got)
		}
		if rec := send(t, h, "GET", "/api/devices/"+hexSum("unknown"), adminToken, ""); rec.Code != 404 {
			t.Fatalf("unknown device: status %d", rec.Code)
		}
	})
	t.Run("expect", func(t *testing.T) {
		var got ownership.ExpectResult
		wantJSON(t, send(t, h, "POST", "/api/devices/expected", adminToken, `{"qr":"TUMBLER:1:SN-9","note":"hall"}`), 201, &got)
		if got.Serial != "SN-EXPECTED" {
			t.Fatalf("result %+v", got)
		}
		if r := svc.lastRequest("Expect").(ownership.ExpectRequest); r.QR != "TUMBLER:1:SN-9" || r.Note != "hall" {
			t.Fatalf("request %+v", r)
		}
	})
	t.Run("transfer", func(t *testing.T) {
		var got ownership.TransferResult
		body := `{"new_owner_spki_sha256":"` + hexSum("ca") + `","not_after":"2026-03-08T12:00:00Z","registrar":"coaps://[fd00::1]"}`
		wantJSON(t, send(t, h, "POST", devA+"/transfer", adminToken, body), 200, &got)
		if len(got.Authorization) == 0 || got.AuthorizationHash == "" {
			t.Fatalf("result %+v", got)
		}
		r := svc.lastRequest("Transfer").(ownership.TransferRequest)
		if !r.NotAfter.Equal(baseTime.Add(7*24*time.Hour)) || r.Registrar != "coaps://[fd00::1]" {
			t.Fatalf("request %+v", r)
		}
	})
	t.Run("repossess", func(t *testing.T) {
		var got ownership.RepossessResult
		wantJSON(t, send(t, h, "POST", "/api/repossess", adminToken, `{"serial":"SN-1","qr_secret":"00ff","order":"0oRD"}`), 200, &got)
		if !got.NoticeUntil.Equal(baseTime.Add(30 * 24 * time.Hour)) {
			t.Fatalf("result %+v", got)
		}
		if r := svc.lastRequest("Repossess").(ownership.RepossessRequest); !bytes.Equal(r.Order, []byte{0xd2, 0x84, 0x43}) {
			t.Fatalf("order %x", r.Order)
		}
	})
	t.Run("reset at next check-in", func(t *testing.T) {
		var got Ack
		wantJSON(t, send(t, h, "POST", devA+"/reset", adminToken, ""), 202, &got)
		if got != (Ack{Device: deviceA, Action: ActionReset, Pending: true}) {
			t.Fatalf("ack %+v", got)
		}
	})
	t.Run("reset now", func(t *testing.T) {
		var got Ack
		wantJSON(t, send(t, h, "POST", devA+"/reset", adminToken, `{"immediate":true,"reason":"lost"}`), 200, &got)
		if got.Pending {
			t.Fatalf("ack %+v", got)
		}
		if r := svc.lastRequest("Reset").(ownership.ResetRequest); r != (ownership.ResetRequest{Immediate: true, Reason: "lost"}) {
			t.Fatalf("request %+v", r)
		}
	})
	t.Run("decommission then readmit", func(t *testing.T) {
		var got Ack
		wantJSON(t, send(t, h, "POST", devA+"/decommission", adminToken, `{"reason":"end of life"}`), 200, &got)
		if got != (Ack{Device: deviceA, Action: ActionDecommission}) {
			t.Fatalf("ack %+v", got)
		}
		wantError(t, send(t, h, "POST", devA+"/decommission", adminToken, ""), 409)
		wantJSON(t, send(t, h, "POST", devA+"/readmit", adminToken, ""), 200, &got)
		if got.Action != ActionReadmit {
			t.Fatalf("ack %+v", got)
		}
		wantJSON(t, send(t, h, "POST", devA+"/decommission", adminToken, ""), 200, nil)
		wantJSON(t, send(t, h, "POST", devA+"/readmit", adminToken, "{}"), 200, nil)
	})
	t.Run("delegate, read with its token, end", func(t *testing.T) {
		var got ownership.DelegateResult
		body := `{"upstream":{"name":"partner","webhook":{"url":"https://partner.example/hook"}},"until":"2026-04-01T00:00:00Z"}`
		rec := send(t, h, "POST", devA+"/delegations", adminToken, body)
		wantJSON(t, rec, 201, &got)
		if got.ID != "dlg-1" || got.Token == "" {
			t.Fatalf("result %+v", got)
		}
		if loc := rec.Header().Get("Location"); loc != devA+"/delegations/dlg-1" {
			t.Fatalf("Location %q", loc)
		}
		if r := svc.lastRequest("Delegate").(ownership.DelegateRequest); r.Upstream.Webhook == nil || r.Upstream.Webhook.URL != "https://partner.example/hook" {
			t.Fatalf("request %+v", r)
		}
		var admin, delegate ownership.DeviceDetail
		wantJSON(t, send(t, h, "GET", devA, adminToken, ""), 200, &admin)
		wantJSON(t, send(t, h, "GET", devA, got.Token, ""), 200, &delegate)
		if len(admin.Delegations) != 1 || delegate.Delegations == nil || len(delegate.Delegations) != 0 || delegate.ID != deviceA {
			t.Fatalf("admin sees delegations %+v, delegate %+v, want one and none", admin.Delegations, delegate.Delegations)
		}
		var ack Ack
		wantJSON(t, send(t, h, "DELETE", devA+"/delegations/dlg-1", adminToken, ""), 200, &ack)
		if ack != (Ack{Device: deviceA, Action: ActionEndDelegation, Delegation: "dlg-1"}) {
			t.Fatalf("ack %+v", ack)
		}
		wantError(t, send(t, h, "DELETE", devA+"/delegations/dlg-9", adminToken, ""), 404)
	})
	t.Run("parked", func(t *testing.T) {
		var got ParkedList
		wantJSON(t, send(t, h, "GET", "/api/parked", adminToken, ""), 200, &got)
		if len(got.Parked) != 2 {
			t.Fatalf("parked %+v", got)
		}
		wantJSON(t, send(t, h, "GET", "/api/parked?sink=crm", adminToken, ""), 200, &got)
		if len(got.Parked) != 1 || got.Parked[0].Seq != 9 {
			t.Fatalf("parked %+v", got)
		}
	})
	t.Run("crl", func(t *testing.T) {
		rec := send(t, h, "GET", "/crl", "", "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/pkix-crl" || !bytes.Equal(rec.Body.Bytes(), fakeCRL) {
			t.Fatalf("status %d, Content-Type %q, body %x", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
		}
	})
	t.Run("healthz", func(t *testing.T) {
		var got Health
		wantJSON(t, send(t, h, "GET", "/healthz", "", ""), 200, &got)
		if got.Status != "ok" {
			t.Fatalf("health %+v", got)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		rec := send(t, h, "GET", "/metrics", adminToken, "")
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "tumbler_up 1") {
			t.Fatalf("status %d, body %s", rec.Code, rec.Body)
		}
	})
}

func TestMalformedRequests(t *testing.T) {
	devA := "/api/devices/" + deviceA
	for _, tc := range []struct {
		name   string
		path   string
		ctype  string
		body   string
		status int
		names  string // the message must hold this
	}{
		{"unknown field", "/api/devices/expected", "", `{"serial":"SN-1","colour":"red"}`, 400, `unknown field "colour"`},
		{"unknown nested field", devA + "/delegations", "", `{"upstream":{"name":"p","webhook":{"url":"https://p.example","colour":1}},"until":"2026-04-01T00:00:00Z"}`, 400, `unknown field "upstream.webhook.colour"`},
		{"wrong type", "/api/devices/expected", "", `{"serial":5}`, 400, `field "serial": number is not a string`},
		{"wrong nested type", devA + "/delegations", "", `{"upstream":{"name":7},"until":"2026-04-01T00:00:00Z"}`, 400, `field "upstream.name"`},
		{"bad time", devA + "/transfer", "", `{"new_owner_spki_sha256":"ab","not_after":"next week"}`, 400, `field "not_after": "next week" is not an RFC 3339 time`},
		{"time as number", devA + "/transfer", "", `{"new_owner_spki_sha256":"ab","not_after":1700000000}`, 400, `field "not_after": not an RFC 3339 time string`},
		{"bad base64", "/api/devices/expected", "", `{"authorization":"!!!"}`, 400, `field "authorization": not base64`},
		{"two values", "/api/devices/expected", "", `{"serial":"SN-1"} {"serial":"SN-2"}`, 400, "exactly one JSON value"},
		{"trailing garbage", "/api/devices/expected", "", `{"serial":"SN-1"} x`, 400, "exactly one JSON value"},
		{"syntax error", "/api/devices/expected", "", `{"serial":}`, 400, "malformed JSON at byte"},
		{"truncated", "/api/devices/expected", "", `{"serial":"SN-1"`, 400, "truncated JSON"},
		{"empty body", "/api/devices/expected", "", ``, 400, "empty body"},
		{"null", "/api/repossess", "", `null`, 400, "not null"},
		{"array", "/api/repossess", "", `[1]`, 400, "must be a JSON object, not array"},
		{"too large", "/api/devices/expected", "", `{"note":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "larger than"},
		{"form content type", "/api/devices/expected", "application/x-www-form-urlencoded", `serial=SN-1`, 415, "not application/json"},
		{"body on readmit", devA + "/readmit", "", `{"reason":"x"}`, 400, `unknown field "reason"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			h := newTestServer(t, svc, testConfig()).Handler()
			req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+adminToken)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			} else if tc.body != "" {
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			msg := wantError(t, rec, tc.status)
			if !strings.Contains(msg, tc.names) {
				t.Errorf("error %q does not say %q", msg, tc.names)
			}
			if !strings.HasPrefix(msg, "invalid request: ") {
				t.Errorf("error %q does not start with \"invalid request: \"", msg)
			}
			for _, m := range []string{"Expect", "Transfer", "Repossess", "Delegate", "Readmit"} {
				if svc.called(m) {
					t.Errorf("%s called with a malformed request", m)
				}
			}
		})
	}
}

func TestMalformedQueriesAndPaths(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, names string
	}{
		{"overdue not a bool", "GET", "/api/devices?overdue=maybe", `"overdue"`},
		{"negative limit", "GET", "/api/devices?limit=-1", `"limit"`},
		{"limit not a number", "GET", "/api/devices?limit=ten", `"limit"`},
		{"unknown parameter", "GET", "/api/devices?stat=active", `unknown query parameter "stat"`},
		{"repeated parameter", "GET", "/api/devices?state=a&state=b", `"state" given 2 times`},
		{"bad query escape", "GET", "/api/parked?sink=%zz", "malformed query"},
		{"short device id", "GET", "/api/devices/abc", `device id "abc"`},
		{"non-hex device id", "POST", "/api/devices/" + strings.Repeat("g", 64) + "/readmit", "64 hex digits"},
		{"long delegation id", "DELETE", "/api/devices/" + deviceA + "/delegations/" + strings.Repeat("d", 200), "delegation id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			rec := send(t, newTestServer(t, svc, testConfig()).Handler(), tc.method, tc.path, adminToken, "")
			if msg := wantError(t, rec, 400); !strings.Contains(msg, tc.names) {
				t.Errorf("error %q does not say %q", msg, tc.names)
			}
		})
	}
}

func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		detailed bool // the service's message reaches the caller
	}{
		{"not found", fmt.Errorf("device 1234: %w", ownership.ErrNotFound), 404, true},
		{"invalid", fmt.Errorf("%w: new_owner_spki_sha256: not 64 hex digits", ownership.ErrInvalid), 400, true},
		{"conflict", fmt.Errorf("%w: device is decommissioned", ownership.ErrConflict), 409, true},
		{"refused", fmt.Errorf("%w: MASA: authorization expired", ownership.ErrRefused), 403, true},
		{"unavailable", fmt.Errorf("%w: dial tcp 10.1.2.3:443: connection refused", ownership.ErrUnavailable), 503, false},
		{"unauthorized", fmt.Errorf("%w: token expired", ownership.ErrUnauthorized), 401, false},
		{"other", errors.New("sqlite: database disk image is malformed"), 500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			svc.failWith = tc.err
			var logs bytes.Buffer
			h := newTestServer(t, svc, testConfig(), WithLogger(zerolog.New(&logs))).Handler()
			msg := wantError(t, send(t, h, "POST", "/api/devices/"+deviceA+"/transfer", adminToken, `{"new_owner_spki_sha256":"ab"}`), tc.status)
			if tc.detailed && msg != tc.err.Error() {
				t.Errorf("error %q, want the service's %q", msg, tc.err.Error())
			}
			if !tc.detailed && strings.Contains(msg, ":") {
				t.Errorf("error %q carries detail", msg)
			}
			line := lastLogLine(t, &logs)
			if line["level"] != "warn" || line["status"] != float64(tc.status) || line["cause"] != tc.err.Error() {
				t.Errorf("log line %v, want warn with the status and the cause", line)
			}
		})
	}
}

// lastLogLine decodes the last JSON log line in buf.
func lastLogLine(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("log line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

func TestRequestLog(t *testing.T) {
	var logs bytes.Buffer
	h := newTestServer(t, newFakeService(), testConfig(), WithLogger(zerolog.New(&logs).Level(zerolog.InfoLevel))).Handler()
	wantJSON(t, send(t, h, "GET", "/api/devices", otherAdmin, ""), 200, nil)
	line := lastLogLine(t, &logs)
	for k, want := range map[string]any{"level": "info", "method": "GET", "path": "/api/devices", "route": "GET /api/devices", "status": float64(200), "caller": "admin[1]", "component": "api"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Error("log line without duration")
	}
	wantJSON(t, send(t, h, "GET", "/healthz", "", ""), 200, nil)
	wantError(t, send(t, h, "GET", "/api/devices", "wrong-token-0123456789", ""), 401)
	if strings.Contains(logs.String(), adminToken) || strings.Contains(logs.String(), otherAdmin) || strings.Contains(logs.String(), "wrong-token") {
		t.Error("a token reached the log")
	}
	if strings.Contains(logs.String(), "/healthz") {
		t.Error("a healthy probe logged at info")
	}
}

func TestNoRoute(t *testing.T) {
	h := newTestServer(t, newFakeService(), testConfig()).Handler()
	wantError(t, send(t, h, "GET", "/api/nothing", adminToken, ""), 404)
	wantError(t, send(t, h, "GET", "/", "", ""), 404)
	rec := send(t, h, "DELETE", "/api/devices/"+deviceA, adminToken, "")
	if msg := wantError(t, rec, 405); !strings.Contains(msg, "DELETE") {
		t.Errorf("error %q does not name the method", msg)
	}
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow %q", allow)
	}
	rec = send(t, h, "GET", "/api//devices", adminToken, "")
	wantError(t, rec, http.StatusTemporaryRedirect)
	if loc := rec.Header().Get("Location"); loc != "/api/devices" {
		t.Errorf("Location %q", loc)
	}
}

func TestHealth(t *testing.T) {
	var deadline bool
	s := newTestServer(t, newFakeService(), testConfig(), WithHealth(func(ctx context.Context) error {
		_, deadline = ctx.Deadline()
		return errors.New("store: disk full")
	}))
	msg := wantError(t, send(t, s.Handler(), "GET", "/healthz", "", ""), 503)
	if strings.Contains(msg, "disk") {
		t.Errorf("the cause reached the caller: %q", msg)
	}
	if !deadline {
		t.Error("health check without a deadline")
	}
}

func TestPublicMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.PublicMetrics = true
	rec := send(t, newTestServer(t, newFakeService(), cfg).Handler(), "GET", "/metrics", "", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "tumbler_up") {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	s, err := New(newFakeService(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, send(t, s.Handler(), "GET", "/metrics", adminToken, ""), 404)
}

// panicking panics in CRL.
type panicking struct{ *fakeService }

func (panicking) CRL(context.Context) ([]byte, error) { panic("boom") }

func TestPanicIsA500(t *testing.T) {
	var logs bytes.Buffer
	h := newTestServer(t, panicking{newFakeService()}, testConfig(), WithLogger(zerolog.New(&logs))).Handler()
	if msg := wantError(t, send(t, h, "GET", "/crl", "", ""), 500); msg != "internal error" {
		t.Errorf("error %q", msg)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Error("the panic was not logged")
	}
}
