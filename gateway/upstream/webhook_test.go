package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

const testSecret = "webhook-secret-0123456789"

// hookRequest is what the test server saw.
type hookRequest struct {
	header http.Header
	body   []byte
}

// hookServer is an httptest TLS server whose answers are scripted per
// request number (from 1) for each record, keyed by Tumbler-Seq.
type hookServer struct {
	*httptest.Server
	caFile string

	mu       sync.Mutex
	requests []hookRequest
	attempts map[uint64]int
	answer   func(seq uint64, attempt int, w http.ResponseWriter, r *http.Request)
}

func newHookServer(t testing.TB, answer func(seq uint64, attempt int, w http.ResponseWriter, r *http.Request)) *hookServer {
	t.Helper()
	h := &hookServer{attempts: make(map[uint64]int), answer: answer}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	h.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests make fail on purpose
	h.StartTLS()
	t.Cleanup(h.Close)
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.Certificate().Raw})
	if err := os.WriteFile(h.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	seq, _ := strconv.ParseUint(r.Header.Get(headerSeq), 10, 64)
	h.mu.Lock()
	h.requests = append(h.requests, hookRequest{header: r.Header.Clone(), body: body})
	h.attempts[seq]++
	n := h.attempts[seq]
	h.mu.Unlock()
	if h.answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.answer(seq, n, w, r)
}

func (h *hookServer) attemptsOf(seq uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[seq]
}

func (h *hookServer) log() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// webhookRig runs a Deliverer with one webhook sink to h.
type webhookRig struct {
	src   *MemorySource
	sink  *Webhook
	clock *fakeClock
	recs  []Record
	stop  func()
}

func newWebhookRig(t testing.TB, h *hookServer, cfg WebhookConfig, recs []Record) *webhookRig {
	t.Helper()
	cfg.URL = h.URL + "/tumbler"
	cfg.TLS.CAFile = h.caFile
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	clock := &fakeClock{now: baseTime.Add(time.Minute)}
	sink, err := NewWebhook("crm", cfg, WithSinkClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	src := filledSource(t, recs)
	d, err := NewDeliverer(src, []Sink{sink}, fakeClockOptions(clock, 0)...)
	if err != nil {
		t.Fatal(err)
	}
	return &webhookRig{src: src, sink: sink, clock: clock, recs: recs, stop: runDeliverer(t, d)}
}

func (w *webhookRig) waitDrained(t testing.TB) {
	t.Helper()
	last := w.recs[len(w.recs)-1].Seq
	waitFor(t, 5*time.Minute, "webhook drained", func() bool { return w.src.Cursor("crm") == last })
	w.stop()
}

func TestWebhookCOSEBodyHeadersAndSignature(t *testing.T) {
	h := newHookServer(t, nil)
	recs := testRecords(20, 3)
	rig := newWebhookRig(t, h, WebhookConfig{Headers: map[string]string{"Authorization": "Bearer t0ken"}}, recs)
	rig.waitDrained(t)

	index := bySeq(recs)
	var arrivals []uint64
	for _, req := range h.log() {
		seq, err := strconv.ParseUint(req.header.Get(headerSeq), 10, 64)
		if err != nil {
			t.Fatalf("Tumbler-Seq: %v", err)
		}
		arrivals = append(arrivals, seq)
		r := index[seq]
		if string(req.body) != string(r.COSE) {
			t.Errorf("seq %d: body is not the COSE bytes", seq)
		}
		for name, want := range map[string]string{
			"Content-Type":    `application/cose; cose-type="cose-sign1"`,
			"Idempotency-Key": `"` + hex.EncodeToString(r.ID[:]) + `"`,
			headerRecordType:  r.Type,
			headerDevice:      hex.EncodeToString(r.Device[:]),
			"Authorization":   "Bearer t0ken",
		} {
			if got := req.header.Get(name); got != want {
				t.Errorf("seq %d: %s = %q, want %q", seq, name, got, want)
			}
		}
		if sum := sha256.Sum256(req.body); sum != r.ID {
			t.Errorf("seq %d: SHA-256 of the body is not the record id", seq)
		}
		if err := VerifySignature([]byte(testSecret), req.header.Get(headerSignature), req.body, rig.clock.Now(), DefaultSignatureTolerance); err != nil {
			t.Errorf("seq %d: signature: %v", seq, err)
		}
	}
	if len(arrivals) != len(recs) {
		t.Errorf("%d requests for %d records", len(arrivals), len(recs))
	}
	checkDeviceOrder(t, index, arrivals)
}

func TestWebhookJSONEnvelope(t *testing.T) {
	h := newHookServer(t, nil)
	recs := testRecords(5, 2)
	rig := newWebhookRig(t, h, WebhookConfig{Format: FormatJSON}, recs)
	rig.waitDrained(t)
	index := bySeq(recs)
	for _, req := range h.log() {
		if ct := req.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var env Envelope
		if err := json.Unmarshal(req.body, &env); err != nil {
			t.Fatal(err)
		}
		r := index[env.Seq]
		want := Envelope{
			RecordID: hex.EncodeToString(r.ID[:]), Type: r.Type, Device: hex.EncodeToString(r.Device[:]),
			Serial: r.Serial, Seq: r.Seq, Time: r.Time.UTC(), COSE: r.COSE,
		}
		if env.RecordID != want.RecordID || env.Type != want.Type || env.Device != want.Device || env.Serial != want.Serial ||
			!env.Time.Equal(want.Time) || string(env.COSE) != string(want.COSE) {
			t.Errorf("envelope = %+v, want %+v", env, want)
		}
		if err := VerifySignature([]byte(testSecret), req.header.Get(headerSignature), req.body, rig.clock.Now(), DefaultSignatureTolerance); err != nil {
			t.Errorf("signature over the json body: %v", err)
		}
	}
	// The raw envelope uses the documented field names.
	var raw map[string]any
	if err := json.Unmarshal(h.log()[0].body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"record_id", "type", "device", "serial", "seq", "time", "cose_b64"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("envelope lacks %q", k)
		}
	}
}

func TestWebhookRetriesThenSucceeds(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(w http.ResponseWriter, r *http.Request) // for the first two attempts of seq 2
		timeout   time.Duration
		wantWaits []time.Duration // with zero jitter, only Retry-After shows
	}{
		{
			name:   "500 retried until it succeeds",
			answer: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
		},
		{
			name: "429 with Retry-After honoured",
			answer: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "9")
				w.WriteHeader(http.StatusTooManyRequests)
			},
			wantWaits: []time.Duration{9 * time.Second, 9 * time.Second},
		},
		{
			name: "503 with an HTTP-date Retry-After",
			answer: func(w http.ResponseWriter, _ *http.Request) {
				// the sink's clock reads baseTime+1m
				w.Header().Set("Retry-After", baseTime.Add(3*time.Minute).Format(http.TimeFormat))
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			wantWaits: []time.Duration{2 * time.Minute, 2 * time.Minute},
		},
		{
			name:    "timeout retried",
			timeout: 200 * time.Millisecond,
			answer: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
		},
		{
			name:   "408 retried",
			answer: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusRequestTimeout) },
		},
		{
			name:   "401 retried, not parked",
			answer: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) },
		},
		{
			name: "redirect not followed, retried",
			answer: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHookServer(t, func(seq uint64, attempt int, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/tumbler" {
					t.Errorf("request to %s: a redirect was followed", r.URL.Path)
				}
				if seq == 2 && attempt <= 2 {
					tt.answer(w, r)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			recs := testRecords(4, 1)
			rig := newWebhookRig(t, h, WebhookConfig{Timeout: tt.timeout}, recs)
			rig.waitDrained(t)
			if got := h.attemptsOf(2); got != 3 {
				t.Errorf("seq 2 attempted %d times, want 3", got)
			}
			if got := h.attemptsOf(3); got != 1 {
				t.Errorf("seq 3 attempted %d times, want 1 (nothing after a failed record of its device)", got)
			}
			if len(rig.src.Parked("crm")) != 0 {
				t.Errorf("parked %v", rig.src.Parked("crm"))
			}
			if tt.wantWaits != nil {
				if got := rig.clock.waitsExcept(testPoll, testMetrics); !slices.Equal(got, tt.wantWaits) {
					t.Errorf("waits = %v, want %v", got, tt.wantWaits)
				}
			}
		})
	}
}

func TestWebhook4xxParks(t *testing.T) {
	h := newHookServer(t, func(seq uint64, _ int, w http.ResponseWriter, _ *http.Request) {
		if seq == 2 {
			http.Error(w, "unknown device\x1b[31m", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	recs := testRecords(3, 1)
	rig := newWebhookRig(t, h, WebhookConfig{}, recs)
	rig.waitDrained(t)
	parked := rig.src.Parked("crm")
	if len(parked) != 1 || parked[0].Seq != 2 {
		t.Fatalf("parked = %+v, want seq 2", parked)
	}
	if want := "http 400 Bad Request: unknown device?[31m"; parked[0].Reason != want {
		t.Errorf("reason = %q, want %q", parked[0].Reason, want)
	}
	if h.attemptsOf(2) != 1 || h.attemptsOf(3) != 1 {
		t.Errorf("attempts: seq 2 %d, seq 3 %d; want 1 each", h.attemptsOf(2), h.attemptsOf(3))
	}
}

func TestWebhookStatusOutcome(t *testing.T) {
	tests := []struct {
		status int
		want   State
	}{
		{200, Delivered}, {201, Delivered}, {202, Delivered}, {204, Delivered},
		{400, Parked}, {404, Parked}, {409, Parked}, {410, Parked}, {413, Parked}, {422, Parked},
		{401, Retry}, {403, Retry}, {408, Retry}, {429, Retry},
		{500, Retry}, {502, Retry}, {503, Retry}, {504, Retry},
		{301, Retry}, {307, Retry}, {308, Retry},
	}
	h := newHookServer(t, func(seq uint64, _ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(tests[seq-1].status)
	})
	sink, err := NewWebhook("crm", WebhookConfig{URL: h.URL, TLS: TLSConfig{CAFile: h.caFile}, MaxInflight: 8})
	if err != nil {
		t.Fatal(err)
	}
	recs := testRecords(len(tests), len(tests)) // one device each: no record waits for another
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, tt := range tests {
		res, err := sink.Deliver(ctx, recs[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Outcomes[0].State; got != tt.want {
			t.Errorf("status %d: %v, want %v (%s)", tt.status, got, tt.want, res.Outcomes[0].Reason)
		}
	}
	sink.transport.CloseIdleConnections()
}

func TestWebhookUntrustedServerRetries(t *testing.T) {
	h := newHookServer(t, nil)
	// No CA file: the system roots do not know httptest's certificate.
	sink, err := NewWebhook("crm", WebhookConfig{URL: h.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := sink.Deliver(ctx, testRecords(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcomes[0].State != Retry || len(h.log()) != 0 {
		t.Errorf("outcome %+v with %d requests; want retry and none", res.Outcomes[0], len(h.log()))
	}
	sink.transport.CloseIdleConnections()
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"seconds", "120", 2 * time.Minute},
		{"zero", "0", 0},
		{"http date", "Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second},
		{"date in the past", "Sun, 01 Mar 2026 11:00:00 GMT", 0},
		{"negative", "-5", 0},
		{"garbage", "soon", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewWebhookErrors(t *testing.T) {
	if _, err := NewWebhook("crm", WebhookConfig{URL: "ftp://x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("err = %v, want ErrConfig", err)
	}
	if _, err := NewWebhook("", WebhookConfig{URL: "https://x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("err = %v, want ErrConfig", err)
	}
}
