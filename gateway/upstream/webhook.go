package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Headers the webhook sink sets on every request, besides Content-Type and
// Idempotency-Key.
const (
	headerSignature  = "Tumbler-Signature"   // see Sign
	headerRecordType = "Tumbler-Record-Type" // record type, for routing without decoding
	headerDevice     = "Tumbler-Device"      // device id, hex
	headerSeq        = "Tumbler-Seq"         // gateway sequence number
)

// How much of a response body the sink reads: a little for the park
// reason, more to drain it so the connection is reused.
const (
	reasonBodyBytes = 256
	drainBodyBytes  = 64 << 10
)

// Envelope is the webhook body in the json format.
type Envelope struct {
	RecordID string    `json:"record_id"` // hex SHA-256 of COSE
	Type     string    `json:"type"`
	Device   string    `json:"device"` // hex device id
	Serial   string    `json:"serial"`
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`     // RFC 3339, UTC
	COSE     []byte    `json:"cose_b64"` // the COSE_Sign1, standard base64
}

// Webhook is an HTTPS webhook sink: one POST per record, to the configured
// URL. The body is the COSE_Sign1 (Content-Type ContentTypeCOSE) or, in
// the json format, an Envelope (application/json). Every request carries
//
//	Idempotency-Key: "<record id hex>"   (an RFC 8941 String, as
//	                                      draft-ietf-httpapi-idempotency-key-header says)
//	Tumbler-Signature: t=<unix>,v1=<hex> (if a secret is set; see Sign)
//	Tumbler-Record-Type, Tumbler-Device, Tumbler-Seq
//
// Responses: 2xx → delivered. 408, 429, 5xx, timeouts and network errors
// → retry, honouring Retry-After. 401 and 403 → retry: they refuse the
// gateway's credentials, not the record, and parking would quietly move
// the whole backlog aside until someone fixes a token. 3xx → retry:
// redirects are not followed (a 301/302 would turn the POST into a GET),
// the URL needs fixing. Any other 4xx → parked with the status and the
// start of the response body.
//
// Requests overlap across devices (MaxInflight), one in flight per device.
type Webhook struct {
	name      string
	cfg       WebhookConfig
	url       string
	secret    []byte
	client    *http.Client
	transport *http.Transport
	clock     Clock
	log       zerolog.Logger
	recLog    zerolog.Logger
}

// NewWebhook returns a webhook sink named name. cfg gets its defaults
// filled in; errors name the bad field.
func NewWebhook(name string, cfg WebhookConfig, opts ...SinkOption) (*Webhook, error) {
	if err := validName(name); err != nil {
		return nil, fieldErr("name", "%q %s", name, err)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := newSinkOptions(opts)
	if err != nil {
		return nil, err
	}
	u, _ := webhookURL(cfg.URL) // validated above
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.MaxInflight
	tr.Proxy = nil // the gateway talks to its upstream directly
	if u.Scheme == "https" {
		if tr.TLSClientConfig, err = cfg.TLS.load(u.Hostname()); err != nil {
			return nil, err
		}
		tr.ForceAttemptHTTP2 = true
	}
	w := &Webhook{
		name:      name,
		cfg:       cfg,
		url:       u.String(),
		secret:    []byte(cfg.Secret),
		transport: tr,
		clock:     o.clock,
	}
	w.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	w.log = o.log.With().Str("component", "upstream").Str("sink", name).Str("url", u.Redacted()).Logger()
	w.recLog = w.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
	return w, nil
}

// Name returns the sink name.
func (w *Webhook) Name() string { return w.name }

// Run holds the connection pool until ctx is cancelled, then closes its
// idle connections and returns nil.
func (w *Webhook) Run(ctx context.Context) error {
	<-ctx.Done()
	w.transport.CloseIdleConnections()
	return nil
}

// Deliver posts recs, overlapping devices, one request in flight per
// device, and reports an outcome per record. The error is always nil: the
// outcomes say everything.
func (w *Webhook) Deliver(ctx context.Context, recs []Record) (Result, error) {
	res := Result{Outcomes: make([]Outcome, len(recs))}
	pipeline(ctx, recs, w.cfg.MaxInflight, res.Outcomes, w.post)
	return res, nil
}

// body returns the request body and Content-Type for a record.
func (w *Webhook) body(r Record) ([]byte, string, error) {
	if w.cfg.Format != FormatJSON {
		return r.COSE, ContentTypeCOSE, nil
	}
	b, err := json.Marshal(Envelope{
		RecordID: r.IDHex(),
		Type:     r.Type,
		Device:   r.DeviceHex(),
		Serial:   r.Serial,
		Seq:      r.Seq,
		Time:     r.Time.UTC(),
		COSE:     r.COSE,
	})
	if err != nil {
		return nil, "", err
	}
	return b, "application/json", nil
}

// post sends one record and classifies the response.
func (w *Webhook) post(ctx context.Context, r Record) Outcome {
	body, ctype, err := w.body(r)
	if err != nil {
		return Outcome{State: Parked, Reason: "cannot encode the json envelope: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return Outcome{State: Retry, Reason: "request: " + err.Error()}
	}
	h := req.Header
	for k, v := range w.cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", ctype)
	// The header's presence also lets net/http replay the POST on a
	// keep-alive connection the server closed.
	h.Set("Idempotency-Key", `"`+r.IDHex()+`"`)
	h.Set(headerRecordType, r.Type)
	h.Set(headerDevice, r.DeviceHex())
	h.Set(headerSeq, strconv.FormatUint(r.Seq, 10))
	if len(w.secret) > 0 {
		h.Set(headerSignature, Sign(w.secret, w.clock.Now(), body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return Outcome{State: Retry, Reason: fmt.Sprintf("no response within %v", w.cfg.Timeout)}
		}
		return Outcome{State: Retry, Reason: "post: " + err.Error()}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, reasonBodyBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBodyBytes))
	o := w.classify(resp, head)
	w.recLog.Debug().Uint64("seq", r.Seq).Int("status", resp.StatusCode).Str("outcome", o.State.String()).Msg("webhook response")
	return o
}

// classify maps a response to an outcome (see Webhook).
func (w *Webhook) classify(resp *http.Response, head []byte) Outcome {
	code := resp.StatusCode
	status := fmt.Sprintf("http %d %s", code, http.StatusText(code))
	if s := clip(string(head), 120); s != "" {
		status += ": " + s
	}
	switch {
	case code >= 200 && code <= 299:
		return Outcome{State: Delivered}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return Outcome{State: Retry, Reason: status, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), w.clock.Now())}
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return Outcome{State: Retry, Reason: status + " (the gateway's credentials are refused)"}
	case code >= 300 && code <= 399:
		return Outcome{State: Retry, Reason: status + " (redirects are not followed; fix the url)"}
	case code >= 400 && code <= 499:
		return Outcome{State: Parked, Reason: status}
	default:
		return Outcome{State: Retry, Reason: status}
	}
}

// parseRetryAfter reads Retry-After (RFC 9110 §10.2.3): delay-seconds or
// an HTTP-date. Anything else, or a date in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
