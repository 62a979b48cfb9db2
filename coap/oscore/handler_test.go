package oscore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
)

// memContexts is a ContextStore over a map keyed by kid and kid context.
type memContexts struct {
	mu   sync.Mutex
	byID map[string]*Context
	err  error
}

func newMemContexts(cs ...*Context) *memContexts {
	s := &memContexts{byID: map[string]*Context{}}
	for _, c := range cs {
		s.byID[string(c.recipientID)] = c
	}
	return s
}

func (s *memContexts) Lookup(_ context.Context, kid, kidContext []byte) (*Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	c, ok := s.byID[string(kid)]
	if !ok {
		return nil, ErrContextNotFound
	}
	if kidContext != nil {
		if idc, has := c.IDContext(); !has || !bytes.Equal(idc, kidContext) {
			return nil, ErrContextNotFound
		}
	}
	return c, nil
}

// persistedWindows is what a gateway store keeps: one WindowState per
// context, updated with Add in the request's transaction.
type persistedWindows struct {
	mu sync.Mutex
	ws map[string]WindowState
}

func (p *persistedWindows) add(ex *Exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := ex.Context().StateID()
	p.ws[id] = p.ws[id].Add(ex.Seq())
}

func (p *persistedWindows) get(c *Context) (WindowState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws, ok := p.ws[c.StateID()]
	return ws, ok
}

// checkin is an inner handler in the style of the gateway's check-in
// resource: it records the request and the Partial IV in one "transaction".
type checkin struct {
	windows *persistedWindows
	mu      sync.Mutex
	got     []*coap.Request
	fail    error
}

func (h *checkin) ServeCoAP(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	ex, ok := ExchangeFrom(ctx)
	if !ok {
		return nil, coap.Errorf(codes.InternalServerError, "no exchange", nil)
	}
	if h.fail != nil {
		return nil, h.fail
	}
	h.mu.Lock()
	h.got = append(h.got, r)
	h.mu.Unlock()
	if h.windows != nil {
		h.windows.add(ex)
		ex.MarkDurable()
	}
	return coap.Content(coap.FormatCBOR, []byte{0xa0}), nil
}

func newTestHandler(t *testing.T, store ContextStore, inner coap.Handler, opts ...HandlerOption) *Handler {
	t.Helper()
	h, err := NewHandler(store, inner, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func outerRequest(m Message) *coap.Request {
	return &coap.Request{Method: m.Code, Options: m.Options, Payload: m.Payload, ContentFormat: coap.FormatNone, Accept: coap.FormatNone}
}

func checkinRequest() *coap.Request {
	return &coap.Request{
		Method:        codes.POST,
		Path:          "/c",
		Query:         []string{"v=1"},
		ContentFormat: coap.FormatCBOR,
		Accept:        coap.FormatCBOR,
		Payload:       []byte{0xa1, 0x01, 0x02},
	}
}

func TestHandlerRoundTrip(t *testing.T) {
	client, server := pair(t, nil, nil)
	inner := &checkin{windows: &persistedWindows{ws: map[string]WindowState{}}}
	h := newTestHandler(t, newMemContexts(server), inner)
	cl := Client{Ctx: client}

	out, ex, err := cl.Protect(checkinRequest())
	if err != nil {
		t.Fatal(err)
	}
	if out.Method != codes.POST || out.Path != "" || out.ContentFormat != coap.FormatNone {
		t.Fatalf("outer request leaks: %+v", out)
	}
	out.Peer = coap.Peer{Session: "s1"}
	resp, err := h.ServeCoAP(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Changed {
		t.Fatalf("outer code %v, want 2.04", resp.Code)
	}
	got, err := cl.Unprotect(resp, ex)
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != codes.Content || got.ContentFormat != coap.FormatCBOR || !bytes.Equal(got.Payload, []byte{0xa0}) {
		t.Fatalf("inner response %+v", got)
	}
	if len(inner.got) != 1 {
		t.Fatal("inner handler not called")
	}
	ir := inner.got[0]
	if ir.Method != codes.POST || ir.Path != "/c" || len(ir.Query) != 1 || ir.Query[0] != "v=1" ||
		ir.ContentFormat != coap.FormatCBOR || ir.Accept != coap.FormatCBOR || ir.Peer.Session != "s1" ||
		!bytes.Equal(ir.Payload, []byte{0xa1, 0x01, 0x02}) {
		t.Fatalf("inner request %+v", ir)
	}
	if ws, ok := inner.windows.get(server); !ok || !ws.Seen(ex.Seq()) {
		t.Fatalf("PIV not persisted with the check-in")
	}
}

func TestHandlerRejections(t *testing.T) {
	for _, tt := range badRequests() {
		t.Run(tt.name, func(t *testing.T) {
			_, server, good := primedServer(t)
			reg := prometheus.NewRegistry()
			inner := &checkin{}
			h := newTestHandler(t, newMemContexts(server), inner, WithRegisterer(reg))
			before := windowOf(server)

			resp, err := h.ServeCoAP(context.Background(), outerRequest(tt.mutate(t, good)))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tt.code || string(resp.Payload) != tt.diag {
				t.Errorf("response %v %q, want %v %q", resp.Code, resp.Payload, tt.code, tt.diag)
			}
			if v, ok := optionValue(resp.Options, optMaxAge); !ok || len(v) != 0 {
				t.Errorf("no outer Max-Age: 0 on the error response: %v", resp.Options)
			}
			if hasOption(resp.Options, OptionNumber) || resp.ContentFormat != coap.FormatNone {
				t.Errorf("error response must be unprotected plain CoAP: %+v", resp)
			}
			if len(inner.got) != 0 {
				t.Error("inner handler called")
			}
			if after := windowOf(server); after != before {
				t.Errorf("window moved: %+v -> %+v", before, after)
			}
			if n := counterValue(t, reg, outcomeOf(tt.sentinel)); n != 1 {
				t.Errorf("counter %s = %v, want 1", outcomeOf(tt.sentinel), n)
			}
		})
	}
}

func TestHandlerReplayAndMetrics(t *testing.T) {
	client, server := pair(t, nil, nil)
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, newMemContexts(server), &checkin{}, WithRegisterer(reg))
	m, _, _ := client.ProtectRequest(getRequest())
	if resp, _ := h.ServeCoAP(context.Background(), outerRequest(m)); resp.Code != codes.Changed {
		t.Fatalf("first: %v", resp.Code)
	}
	resp, _ := h.ServeCoAP(context.Background(), outerRequest(m))
	if resp.Code != codes.Unauthorized || string(resp.Payload) != "Replay detected" {
		t.Fatalf("replay answered %v %q", resp.Code, resp.Payload)
	}
	if counterValue(t, reg, OutcomeOK) != 1 || counterValue(t, reg, OutcomeReplay) != 1 {
		t.Error("counters wrong")
	}
	// A second Handler on the same registry shares the counters.
	if _, err := NewHandler(newMemContexts(server), &checkin{}, WithRegisterer(reg)); err != nil {
		t.Fatalf("second registration: %v", err)
	}
}

// TestHandlerInnerError: an application error after verification is a
// protected response (§8.3), and the outer code stays 2.04.
func TestHandlerInnerError(t *testing.T) {
	client, server := pair(t, nil, nil)
	inner := &checkin{fail: coap.Errorf(codes.Forbidden, "device decommissioned", errors.New("detail for the log"))}
	h := newTestHandler(t, newMemContexts(server), inner)
	cl := Client{Ctx: client}
	out, ex, _ := cl.Protect(checkinRequest())
	resp, err := h.ServeCoAP(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Changed || !hasOption(resp.Options, OptionNumber) {
		t.Fatalf("outer %v %v", resp.Code, resp.Options)
	}
	got, err := cl.Unprotect(resp, ex)
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != codes.Forbidden || string(got.Payload) != "device decommissioned" {
		t.Fatalf("inner %v %q", got.Code, got.Payload)
	}
}

func TestHandlerCommitHook(t *testing.T) {
	tests := []struct {
		name      string
		markInner bool
		hookErr   error
		wantCalls int
		wantCode  codes.Code
	}{
		{"hook persists", false, nil, 1, codes.Content},
		{"inner marked durable, hook skipped", true, nil, 0, codes.Content},
		{"hook fails: protected 5.00, no success", false, errors.New("db down"), 1, codes.InternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t, nil, nil)
			var order []string
			inner := coap.HandlerFunc(func(ctx context.Context, r *coap.Request) (*coap.Response, error) {
				order = append(order, "inner")
				ex, _ := ExchangeFrom(ctx)
				if tt.markInner {
					ex.MarkDurable()
				}
				return coap.Content(coap.FormatNone, []byte("ok")), nil
			})
			calls := 0
			hook := func(ctx context.Context, ex *Exchange) error {
				calls++
				order = append(order, "hook")
				return tt.hookErr
			}
			h := newTestHandler(t, newMemContexts(server), inner, WithCommitHook(hook))
			cl := Client{Ctx: client}
			out, ex, _ := cl.Protect(checkinRequest())
			resp, _ := h.ServeCoAP(context.Background(), out)
			got, err := cl.Unprotect(resp, ex)
			if err != nil {
				t.Fatal(err)
			}
			if calls != tt.wantCalls || got.Code != tt.wantCode {
				t.Fatalf("calls %d code %v, want %d %v", calls, got.Code, tt.wantCalls, tt.wantCode)
			}
			if calls > 0 && order[len(order)-1] != "hook" {
				t.Errorf("hook ran before the inner handler: %v", order)
			}
		})
	}
}

func TestHandlerLookupFailure(t *testing.T) {
	client, server := pair(t, nil, nil)
	store := newMemContexts(server)
	store.err = errors.New("database locked")
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, store, &checkin{}, WithRegisterer(reg))
	m, _, _ := client.ProtectRequest(getRequest())
	resp, _ := h.ServeCoAP(context.Background(), outerRequest(m))
	if resp.Code != codes.InternalServerError || string(resp.Payload) != "internal error" {
		t.Fatalf("lookup failure answered %v %q", resp.Code, resp.Payload)
	}
	if counterValue(t, reg, OutcomeInternal) != 1 {
		t.Error("internal counter not incremented")
	}
}

// TestHandlerCrashRecovery: requests are answered only after their Partial
// IV is persisted; a restarted server restoring that state refuses every
// answered request, and a server without state uses Echo recovery.
func TestHandlerCrashRecovery(t *testing.T) {
	client, server := pair(t, nil, nil)
	windows := &persistedWindows{ws: map[string]WindowState{}}
	h := newTestHandler(t, newMemContexts(server), &checkin{windows: windows})
	var answered []Message
	for i := 0; i < 5; i++ {
		m, _, _ := client.ProtectRequest(getRequest())
		if resp, _ := h.ServeCoAP(context.Background(), outerRequest(m)); resp.Code != codes.Changed {
			t.Fatalf("request %d: %v", i, resp.Code)
		}
		answered = append(answered, m)
	}
	// Crash: rebuild the server context from what was persisted.
	ws, ok := windows.get(server)
	if !ok {
		t.Fatal("nothing persisted")
	}
	f := loadVectors(t)
	restarted := newVectorContext(t, f.context(t, "C.1.2"), WithReplayWindow(ws))
	h2 := newTestHandler(t, newMemContexts(restarted), &checkin{windows: windows})
	for i, m := range answered {
		resp, _ := h2.ServeCoAP(context.Background(), outerRequest(m))
		if resp.Code != codes.Unauthorized || string(resp.Payload) != "Replay detected" {
			t.Fatalf("answered request %d replayed after restart: %v %q", i, resp.Code, resp.Payload)
		}
	}
	next, _, _ := client.ProtectRequest(getRequest())
	if resp, _ := h2.ServeCoAP(context.Background(), outerRequest(next)); resp.Code != codes.Changed {
		t.Fatalf("fresh request after restart: %v", resp.Code)
	}
}

func TestClientDoEchoRetry(t *testing.T) {
	clk := newFakeClock()
	client, server := echoServer(t, clk)
	reg := prometheus.NewRegistry()
	inner := &checkin{}
	h := newTestHandler(t, newMemContexts(server), inner, WithRegisterer(reg))
	d := doerFunc(func(ctx context.Context, r *coap.Request) (*coap.Response, error) { return h.ServeCoAP(ctx, r) })
	resp, err := Client{Ctx: client}.Do(context.Background(), d, checkinRequest())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Content {
		t.Fatalf("after Echo retry: %v", resp.Code)
	}
	if len(inner.got) != 1 {
		t.Fatalf("inner handler called %d times, want 1", len(inner.got))
	}
	if hasOption(inner.got[0].Options, optEcho) {
		t.Error("Echo option reached the application")
	}
	if counterValue(t, reg, OutcomeEchoChallenge) != 1 || counterValue(t, reg, OutcomeOK) != 1 {
		t.Error("counters wrong")
	}
	if _, ok := server.ReplayWindow(); !ok {
		t.Error("window not established")
	}
}

type doerFunc func(ctx context.Context, r *coap.Request) (*coap.Response, error)

func (f doerFunc) Do(ctx context.Context, r *coap.Request) (*coap.Response, error) { return f(ctx, r) }

func TestClientUnprotectedError(t *testing.T) {
	client, _ := pair(t, nil, nil)
	d := doerFunc(func(context.Context, *coap.Request) (*coap.Response, error) {
		return &coap.Response{Code: codes.Unauthorized, Payload: []byte("Security context not found"),
			Options: message.Options{{ID: optMaxAge, Value: []byte{}}}}, nil
	})
	_, err := Client{Ctx: client}.Do(context.Background(), d, checkinRequest())
	var se *ServerError
	if !errors.As(err, &se) || !errors.Is(err, ErrNotProtected) || se.Code() != codes.Unauthorized {
		t.Fatalf("error = %v", err)
	}
	if code, diag := coap.CodeOf(err); code != codes.Unauthorized || diag != "Security context not found" {
		t.Errorf("coap.CodeOf = %v %q", code, diag)
	}
}

func TestExchangeFromEmptyContext(t *testing.T) {
	if _, ok := ExchangeFrom(context.Background()); ok {
		t.Fatal("ExchangeFrom on a bare context reported an exchange")
	}
}

func TestNewHandlerValidates(t *testing.T) {
	if _, err := NewHandler(nil, &checkin{}); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("nil store: %v", err)
	}
	if _, err := NewHandler(newMemContexts(), &checkin{}, WithCommitHook(nil)); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("nil hook: %v", err)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tumbler_oscore_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no counter for outcome %q", outcome)
	return 0
}

func TestHandlerLogsRejections(t *testing.T) {
	_, server, good := primedServer(t)
	var buf bytes.Buffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	h := newTestHandler(t, newMemContexts(server), &checkin{}, WithLogger(log))
	if resp, _ := h.ServeCoAP(context.Background(), outerRequest(replaceOSCORE(good, []byte{0x89, 0x64}))); resp.Code != codes.BadOption {
		t.Fatalf("code %v", resp.Code)
	}
	var line struct {
		Level   string `json:"level"`
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if line.Level != "debug" || line.Outcome != OutcomeBadOption {
		t.Errorf("log line %+v", line)
	}
}

func TestWindowStateMerge(t *testing.T) {
	a := WindowState{}.Add(10).Add(12)
	b := WindowState{}.Add(11).Add(40)
	m := a.Merge(b)
	for _, s := range []uint64{10, 11, 12, 40} {
		if !m.Seen(s) {
			t.Errorf("merged state misses %d", s)
		}
	}
	if m.Seen(13) || m.Seen(41) {
		t.Error("merged state invents numbers")
	}
	if m != b.Merge(a) {
		t.Error("Merge does not commute")
	}
}
