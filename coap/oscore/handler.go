package oscore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
)

// ContextStore finds the Recipient Context of a request (RFC 8613 §8.2
// step 2). kid is the request's 'kid'; kidContext is its 'kid context', nil
// when the request has none (non-nil and empty when it is present and
// empty). When kidContext is not nil the returned context must have that ID
// Context (§5). Lookup returns an error wrapping ErrContextNotFound when
// there is no such context; other errors are answered with 5.00.
type ContextStore interface {
	Lookup(ctx context.Context, kid, kidContext []byte) (*Context, error)
}

// CommitHook makes a verified request's sequence number durable before the
// response leaves, so that a restarted server can restore a replay window
// covering every answered request (RFC 8613 §7.4, §7.5; see Handler). It runs after the inner handler, whatever
// that returned, unless the inner handler called Exchange.MarkDurable.
type CommitHook func(ctx context.Context, ex *Exchange) error

// HandlerOption configures a Handler (RFC 8613 §8.2, §8.3 server).
type HandlerOption func(*Handler) error

// WithRegisterer registers the Handler's counters (tumbler_oscore_requests_total
// by outcome) with reg. Registering twice with the same registerer reuses
// the counters.
func WithRegisterer(reg prometheus.Registerer) HandlerOption {
	return func(h *Handler) error {
		if reg == nil {
			return fmt.Errorf("%w: nil prometheus.Registerer", ErrInvalidParams)
		}
		h.reg = reg
		return nil
	}
}

// WithLogger sets the logger. Per-request lines are debug level and
// rate-limited; by default nothing is logged.
func WithLogger(l zerolog.Logger) HandlerOption {
	return func(h *Handler) error {
		h.log = l.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
		return nil
	}
}

// WithCommitHook sets the hook that persists a verified request's sequence
// number (see Handler).
func WithCommitHook(hook CommitHook) HandlerOption {
	return func(h *Handler) error {
		if hook == nil {
			return fmt.Errorf("%w: nil CommitHook", ErrInvalidParams)
		}
		h.hook = hook
		return nil
	}
}

// Handler serves OSCORE-protected requests in front of an inner handler
// (RFC 8613 §8.2, §8.3). It takes the outer request (OSCORE option and
// ciphertext in Options and Payload), finds the Recipient Context by 'kid'
// and 'kid context', verifies and decrypts, calls the inner handler with
// the original request, and protects its response (or its error, as a
// protected error response) into a 2.04 outer response.
//
// Verification failures are answered, as §7.4 and §8.2 describe, with
// unprotected responses carrying an outer Max-Age of 0 (§4.1.3.1):
// 4.02 "Failed to decode COSE", 4.01 "Security context not found",
// 4.01 "Replay detected", 4.00 "Decryption failed"; a request without the
// OSCORE option gets 4.01 "OSCORE required". A context in Echo recovery
// answers its first request with the protected 4.01 + Echo of Appendix B.1.2.
//
// Durability contract. The replay window in memory is updated as soon as a
// request decrypts (§8.2 step 6, atomically with the check, §7.4), so a
// replay is refused while the process lives, even one that races the
// original. What a crash must not lose is every sequence number whose
// response was sent. The inner handler finds the Exchange with
// ExchangeFrom(ctx); it adds Exchange.Seq to the persisted WindowState of
// Exchange.Context().StateID() in the same transaction as its own effects
// (WindowState.Add commutes, so concurrent commits may land in any order)
// and calls Exchange.MarkDurable. Otherwise the CommitHook, if set, does
// it. Only then is the response protected and returned, so a response
// implies a durable sequence number. After a restart the store passes the
// persisted state to WithReplayWindow, or WithEchoRecovery when it has
// none. A request whose transaction did not commit was never answered and
// left no effect; accepting it again after a crash is its first effect.
type Handler struct {
	store   ContextStore
	inner   coap.Handler
	hook    CommitHook
	reg     prometheus.Registerer
	log     zerolog.Logger
	metrics *metrics
}

// NewHandler returns a Handler that looks contexts up in store and serves
// the decrypted requests with inner.
func NewHandler(store ContextStore, inner coap.Handler, opts ...HandlerOption) (*Handler, error) {
	if store == nil || inner == nil {
		return nil, fmt.Errorf("%w: nil ContextStore or inner handler", ErrInvalidParams)
	}
	h := &Handler{store: store, inner: inner, log: zerolog.Nop()}
	for _, o := range opts {
		if err := o(h); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(h.reg)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	return h, nil
}

// ServeCoAP verifies r, calls the inner handler and protects its answer.
func (h *Handler) ServeCoAP(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	m := Message{Code: r.Method, Options: r.Options, Payload: r.Payload}
	ov, err := requestOption(m)
	if err != nil {
		return h.reject(err), nil
	}
	var kidCtx []byte
	if ov.HasKIDContext {
		kidCtx = ov.KIDContext
		if kidCtx == nil {
			kidCtx = []byte{}
		}
	}
	c, err := h.store.Lookup(ctx, ov.KID, kidCtx)
	if err == nil && c == nil {
		err = ErrContextNotFound
	}
	if err != nil {
		if errors.Is(err, ErrContextNotFound) {
			return h.reject(err), nil
		}
		return h.internal("context lookup", err), nil
	}

	dec, ex, err := c.UnprotectRequest(m)
	if errors.Is(err, ErrEchoRequired) {
		out, perr := c.ProtectEchoChallenge(Message{}, ex)
		if perr != nil {
			return h.internal("Echo challenge", perr), nil
		}
		h.metrics.inc(OutcomeEchoChallenge)
		h.log.Debug().Str("context", c.StateID()).Uint64("seq", ex.Seq()).Msg("oscore: Echo challenge (Appendix B.1.2)")
		return outerResponse(out), nil
	}
	if err != nil {
		return h.reject(err), nil
	}
	h.metrics.inc(OutcomeOK)

	answer := h.serveInner(WithExchange(ctx, ex), r, dec)
	if h.hook != nil && !ex.Durable() {
		if err := h.hook(ctx, ex); err != nil {
			h.log.Error().Err(err).Str("context", c.StateID()).Uint64("seq", ex.Seq()).Msg("oscore: commit hook failed")
			answer = Message{Code: codes.InternalServerError, Payload: []byte("internal error")}
		}
	}
	out, err := c.ProtectResponse(answer, ex, false)
	if err != nil {
		// The inner response cannot be protected (too large, sequence
		// store down): say so inside OSCORE if possible.
		h.log.Error().Err(err).Str("context", c.StateID()).Msg("oscore: protecting the response failed")
		out, err = c.ProtectResponse(Message{Code: codes.InternalServerError}, ex, false)
		if err != nil {
			return h.internal("protect response", err), nil
		}
	}
	return outerResponse(out), nil
}

// serveInner builds the inner coap.Request from the decrypted message,
// calls the inner handler and turns its answer into a response message.
func (h *Handler) serveInner(ctx context.Context, outer *coap.Request, dec Message) Message {
	path, err := innerPath(dec.Options)
	if err != nil {
		return Message{Code: codes.BadRequest, Payload: []byte("bad Uri-Path")}
	}
	ir := &coap.Request{
		Method:        dec.Code,
		Path:          path,
		Query:         queries(dec.Options),
		ContentFormat: formatOption(dec.Options, optContentFmt),
		Accept:        formatOption(dec.Options, optAccept),
		Payload:       dec.Payload,
		Options:       dec.Options,
		Peer:          outer.Peer,
	}
	resp, err := h.inner.ServeCoAP(ctx, ir)
	if err != nil {
		code, diag := coap.CodeOf(err)
		return Message{Code: code, Payload: []byte(diag)}
	}
	if resp == nil {
		return Message{Code: codes.Changed}
	}
	return responseMessage(resp)
}

// reject answers a verification failure with the unprotected error
// response of §7.4/§8.2 and an outer Max-Age of 0 (§4.1.3.1).
func (h *Handler) reject(err error) *coap.Response {
	outcome := outcomeOf(err)
	h.metrics.inc(outcome)
	h.log.Debug().Err(err).Str("outcome", outcome).Msg("oscore: request rejected")
	var e *Error
	if !errors.As(err, &e) {
		return h.internalResponse()
	}
	return &coap.Response{
		Code:          e.Code(),
		ContentFormat: coap.FormatNone,
		Payload:       []byte(e.Diagnostic()),
		Options:       maxAgeZero(),
	}
}

func (h *Handler) internal(what string, err error) *coap.Response {
	h.metrics.inc(OutcomeInternal)
	h.log.Error().Err(err).Msg("oscore: " + what)
	return h.internalResponse()
}

func (h *Handler) internalResponse() *coap.Response {
	return &coap.Response{
		Code:          codes.InternalServerError,
		ContentFormat: coap.FormatNone,
		Payload:       []byte("internal error"),
		Options:       maxAgeZero(),
	}
}

func maxAgeZero() message.Options {
	return message.Options{{ID: optMaxAge, Value: []byte{}}}
}

func outerResponse(out Message) *coap.Response {
	return &coap.Response{Code: out.Code, ContentFormat: coap.FormatNone, Payload: out.Payload, Options: out.Options}
}

// innerPath joins the Uri-Path options as "/a/b" ("/" when there is none).
func innerPath(opts message.Options) (string, error) {
	var b strings.Builder
	for _, o := range opts {
		if o.ID != optURIPath {
			continue
		}
		if strings.IndexByte(string(o.Value), '/') >= 0 {
			return "", fmt.Errorf("%w: '/' inside a Uri-Path segment", ErrInvalidMessage)
		}
		b.WriteByte('/')
		b.Write(o.Value)
	}
	if b.Len() == 0 {
		return "/", nil
	}
	return b.String(), nil
}

func queries(opts message.Options) []string {
	var q []string
	for _, o := range opts {
		if o.ID == optURIQuery {
			q = append(q, string(o.Value))
		}
	}
	return q
}

// formatOption returns a Content-Format or Accept value, or coap.FormatNone.
func formatOption(opts message.Options, id message.OptionID) int {
	v, ok := optionValue(opts, id)
	if !ok {
		return coap.FormatNone
	}
	n, ok := uintValue(v)
	if !ok || n > 0xffff {
		return coap.FormatNone
	}
	return int(n)
}

// responseMessage turns a coap.Response into a message: Content-Format from
// the ContentFormat field, the other options as given.
func responseMessage(r *coap.Response) Message {
	opts := make(message.Options, 0, len(r.Options)+1)
	for _, o := range r.Options {
		if o.ID != optContentFmt {
			opts = append(opts, o)
		}
	}
	if r.ContentFormat != coap.FormatNone && r.ContentFormat >= 0 && r.ContentFormat <= 0xffff {
		opts = append(opts, message.Option{ID: optContentFmt, Value: appendUint(nil, uint32(r.ContentFormat))})
	}
	return Message{Code: r.Code, Options: sortedOptions(opts), Payload: r.Payload}
}
