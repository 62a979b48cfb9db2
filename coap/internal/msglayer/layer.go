// Package msglayer is the server side of the CoAP message layer (RFC 7252
// §4) over datagrams: it decodes a datagram with go-coap's codec, answers
// pings and rejects what it must (RST, 4.02, 5.05), suppresses duplicates
// by Message ID for the exchange lifetime (bounded), runs go-coap's
// block-wise engine (RFC 7959) and sends piggybacked (CON) or
// non-confirmable (NON) responses.
//
// It never sends a Confirmable message of its own, so it keeps no
// retransmission state: one Layer serves any number of peers with memory
// bounded by its caches, and no goroutine per peer.
package msglayer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/noresponse"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Peer is the far end of an exchange.
type Peer interface {
	// Key identifies the peer for duplicate detection and block-wise
	// state: the remote address on plain CoAP, the session on DTLS.
	Key() string
	// Send transmits one datagram to the peer.
	Send(b []byte) error
}

// Handler fills resp (code, options, body) for the complete request req.
// It must set a response code.
type Handler[P Peer] func(ctx context.Context, p P, req, resp *pool.Message)

// Defaults for zero Config fields.
const (
	// DefaultExchangeLifetime is EXCHANGE_LIFETIME (RFC 7252 §4.8.2).
	DefaultExchangeLifetime = 247 * time.Second
	DefaultDedupEntries     = 1 << 16
	DefaultBlockwiseTimeout = 30 * time.Second
	DefaultBlockwiseEntries = 1024
	DefaultMaxBody          = 16 << 10
)

// Config tunes a Layer. Zero fields take the defaults.
type Config struct {
	// BlockSZX is the largest block size the server sends or asks for.
	BlockSZX blockwise.SZX
	// MaxBody is the largest request body, reassembled from Block1
	// transfers or not; a larger request is answered 4.13 with Size1.
	MaxBody int
	// ExchangeLifetime is how long a Message ID is remembered.
	ExchangeLifetime time.Duration
	// DedupEntries bounds the remembered Message IDs; the oldest go first.
	DedupEntries int
	// BlockwiseTimeout is how long an unfinished block-wise transfer lives.
	BlockwiseTimeout time.Duration
	// BlockwiseEntries bounds concurrent incoming Block1 transfers.
	BlockwiseEntries int
	// Critical lists critical options the handler understands beyond the
	// RFC 7252/7959/7967/9175 set (for example 9, OSCORE). Any other
	// critical option makes a CON request fail with 4.02 Bad Option.
	Critical []message.OptionID
	// InitialMID seeds the Message IDs of NON responses.
	InitialMID uint16
	// Now is the clock for duplicate expiry (time.Now if nil).
	Now func() time.Time
	// Errors receives internal errors of the block-wise engine (for debug
	// logging). Nil discards them.
	Errors func(error)
}

// Outcome classifies what Receive did with a datagram.
type Outcome int

// Outcomes of Receive.
const (
	// Responded: the request was handled and a response sent (Code).
	Responded Outcome = iota
	// Duplicate: a retransmitted request was answered from the cache or,
	// while its first copy was still being handled, dropped.
	Duplicate
	// Reset: a Reset message was sent (ping, or a message that must be
	// rejected).
	Reset
	// Ignored: an ACK, RST, or non-confirmable message that needs nothing.
	Ignored
	// Malformed: the datagram is not a CoAP message (dropped, or rejected
	// with RST when its header could be read).
	Malformed
)

var outcomeNames = [...]string{"responded", "duplicate", "reset", "ignored", "malformed"}

// String names the outcome.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result reports what Receive did.
type Result struct {
	Outcome Outcome
	// Code is the response code sent (Responded only; codes.Empty when an
	// empty ACK was sent because No-Response suppressed the answer).
	Code codes.Code
	// Err is a send or encode error, if any.
	Err error
}

// Layer is the server message layer for one listener.
type Layer[P Peer] struct {
	cfg      Config
	h        Handler[P]
	pool     *pool.Pool
	bw       *blockwise.BlockWise[*Layer[P]]
	dedup    *dedup
	mid      atomic.Uint32
	critical map[message.OptionID]bool
	seed     maphash.Seed
}

// New returns a Layer that passes complete requests to h.
func New[P Peer](cfg Config, h Handler[P]) *Layer[P] {
	if cfg.BlockSZX == 0 || cfg.BlockSZX > blockwise.SZX1024 {
		cfg.BlockSZX = blockwise.SZX1024
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.ExchangeLifetime <= 0 {
		cfg.ExchangeLifetime = DefaultExchangeLifetime
	}
	if cfg.DedupEntries <= 0 {
		cfg.DedupEntries = DefaultDedupEntries
	}
	if cfg.BlockwiseTimeout <= 0 {
		cfg.BlockwiseTimeout = DefaultBlockwiseTimeout
	}
	if cfg.BlockwiseEntries <= 0 {
		cfg.BlockwiseEntries = DefaultBlockwiseEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Errors == nil {
		cfg.Errors = func(error) {}
	}
	l := &Layer[P]{
		cfg: cfg,
		h:   h,
		// A pool that keeps nothing: messages handed to the block-wise
		// engine outlive the exchange, so none is ever recycled.
		pool:     pool.New(0, 0),
		dedup:    newDedup(cfg.ExchangeLifetime, cfg.DedupEntries),
		critical: knownCritical(cfg.Critical),
		seed:     maphash.MakeSeed(),
	}
	l.mid.Store(uint32(cfg.InitialMID))
	l.bw = blockwise.New(l, cfg.BlockwiseTimeout, cfg.Errors, nil)
	l.bw.SetReceivingMessagesCacheMaxEntries(cfg.BlockwiseEntries)
	l.bw.SetMaxReceiveBodySize(int64(cfg.MaxBody))
	return l
}

// AcquireMessage implements blockwise.Client.
func (l *Layer[P]) AcquireMessage(ctx context.Context) *pool.Message {
	return l.pool.AcquireMessage(ctx)
}

// ReleaseMessage implements blockwise.Client.
func (l *Layer[P]) ReleaseMessage(m *pool.Message) { l.pool.ReleaseMessage(m) }

// Expire drops expired duplicate and block-wise state. Call it
// periodically.
func (l *Layer[P]) Expire(now time.Time) {
	l.dedup.expire(now)
	l.bw.CheckExpirations(now)
}

// Remembered is the number of Message IDs in the duplicate cache.
func (l *Layer[P]) Remembered() int { return l.dedup.len() }

func (l *Layer[P]) nextMID() int32 {
	return int32(uint16(l.mid.Add(1)))
}

// Receive processes one datagram from p. ctx is passed to the handler.
func (l *Layer[P]) Receive(ctx context.Context, p P, datagram []byte) Result {
	req := l.pool.AcquireMessage(ctx)
	if _, err := req.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
		return l.malformed(p, datagram)
	}
	typ, code := req.Type(), req.Code()
	if typ == message.Acknowledgement || typ == message.Reset {
		// This layer never sends Confirmable messages: nothing to match.
		return Result{Outcome: Ignored}
	}
	if code == codes.Empty || code>>5 != 0 {
		// A ping (Empty CON), or a response/reserved code sent as a
		// request: reject a CON with RST, ignore a NON (RFC 7252 §4.2, §4.3).
		if typ == message.Confirmable {
			return l.reset(p, req.MessageID())
		}
		return Result{Outcome: Ignored}
	}
	key := dedupKey{peer: p.Key(), mid: uint16(req.MessageID())}
	state, cached, entry := l.dedup.begin(key, req.Token(), l.cfg.Now())
	switch {
	case state == dedupInFlight:
		return Result{Outcome: Duplicate}
	case state == dedupDone:
		// RFC 7252 §4.5: acknowledge each duplicate CON with the same
		// response; silently ignore duplicate NONs.
		var err error
		if typ == message.Confirmable && cached != nil {
			err = p.Send(cached)
		}
		return Result{Outcome: Duplicate, Err: err}
	}
	out, sent, err := l.respond(ctx, p, req)
	l.dedup.finish(entry, out)
	if err != nil {
		return Result{Outcome: Responded, Code: sent, Err: err}
	}
	if out != nil {
		err = p.Send(out)
	}
	return Result{Outcome: Responded, Code: sent, Err: err}
}

// malformed handles a datagram the codec rejected: an unknown version is
// ignored silently (RFC 7252 §3), a CON with a readable header gets RST
// (§4.2), anything else is dropped.
func (l *Layer[P]) malformed(p P, b []byte) Result {
	if len(b) < 4 || b[0]>>6 != 1 {
		return Result{Outcome: Malformed}
	}
	if message.Type((b[0]>>4)&0x3) != message.Confirmable {
		return Result{Outcome: Malformed}
	}
	rst := []byte{0x70, 0x00, b[2], b[3]} // Ver 1, RST, TKL 0, 0.00, same MID
	return Result{Outcome: Malformed, Err: p.Send(rst)}
}

func (l *Layer[P]) reset(p P, mid int32) Result {
	rst := []byte{0x70, 0x00, 0, 0}
	binary.BigEndian.PutUint16(rst[2:], uint16(mid))
	return Result{Outcome: Reset, Err: p.Send(rst)}
}

// respond runs the request through the block-wise engine and the handler
// and returns the encoded response (nil when nothing is to be sent) and
// its code.
func (l *Layer[P]) respond(ctx context.Context, p P, req *pool.Message) ([]byte, codes.Code, error) {
	reqType, mid := req.Type(), req.MessageID()
	token := bytes.Clone(req.Token())
	resp := l.pool.AcquireMessage(ctx)
	resp.SetToken(token)

	switch {
	case l.rejectCritical(req, resp):
		if reqType == message.NonConfirmable {
			// RFC 7252 §5.4.1: a NON with an unrecognized critical option
			// is rejected, which for NON means no answer.
			return nil, codes.Empty, nil
		}
	case req.HasOption(message.ProxyURI) || req.HasOption(message.ProxyScheme):
		// RFC 7252 §5.7.2: this endpoint is not a proxy.
		setDiagnostic(resp, codes.ProxyingNotSupported, "not a proxy")
	default:
		resp = l.runBlockwise(ctx, p, req, resp, token)
	}

	if resp.Code() == codes.Empty {
		// The block-wise engine failed without an answer.
		setDiagnostic(resp, codes.InternalServerError, "")
	}
	code := resp.Code()
	if suppressed(req, code) {
		// RFC 7967 §2: the client is not interested in this class of
		// response; a CON still gets an empty ACK.
		if reqType != message.Confirmable {
			return nil, codes.Empty, nil
		}
		resp = l.pool.AcquireMessage(ctx)
		resp.SetCode(codes.Empty)
		code = codes.Empty
	}
	resp.SetToken(token)
	if code == codes.Empty {
		resp.SetToken(nil)
	}
	if reqType == message.Confirmable {
		resp.SetType(message.Acknowledgement)
		resp.SetMessageID(mid)
	} else {
		resp.SetType(message.NonConfirmable)
		resp.SetMessageID(l.nextMID())
	}
	b, err := resp.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		return nil, code, fmt.Errorf("msglayer: encode %v response: %w", code, err)
	}
	return bytes.Clone(b), code, nil
}

// runBlockwise passes req through go-coap's block-wise engine, which calls
// the handler once the request body is complete and splits a large
// response into blocks. It returns the message to send.
func (l *Layer[P]) runBlockwise(ctx context.Context, p P, req, resp *pool.Message, token message.Token) *pool.Message {
	if len(token) > 0 {
		// The engine keys GET transfers by token alone; scope the token to
		// the peer so that two peers using the same (often short) token do
		// not share a transfer. The original token is restored on output.
		// SetToken appends in place and the decoded token aliases the
		// datagram buffer, so detach it first.
		req.SetToken(nil)
		req.SetToken(l.scopedToken(p.Key(), token))
		resp.SetToken(req.Token())
	}
	w := responsewriter.New(resp, l)
	next := func(w *responsewriter.ResponseWriter[*Layer[P]], r *pool.Message) {
		if size, err := r.BodySize(); err == nil && size > int64(l.cfg.MaxBody) {
			setDiagnostic(w.Message(), codes.RequestEntityTooLarge, "request too large")
			w.Message().SetOptionUint32(message.Size1, uint32(l.cfg.MaxBody))
			return
		}
		l.h(ctx, p, r, w.Message())
	}
	l.bw.Handle(w, req, l.cfg.BlockSZX, maxMessageSize, keyAddr(p.Key()), next)
	return w.Message()
}

// maxMessageSize is what the block-wise engine may assume for one message.
const maxMessageSize = 64 << 10

// rejectCritical fills resp with 4.02 if req carries a critical option this
// server does not understand, or a known one with an illegal length (RFC
// 7252 §5.4.1, §5.4.3).
func (l *Layer[P]) rejectCritical(req, resp *pool.Message) bool {
	var bad []string
	var last message.OptionID
	for _, o := range req.Options() {
		if o.ID%2 == 0 || (len(bad) > 0 && o.ID == last) {
			continue
		}
		extra, known := l.critical[o.ID]
		if known && (extra || message.VerifyOptLen(o.ID, len(o.Value))) {
			continue
		}
		bad = append(bad, strconv.Itoa(int(o.ID)))
		last = o.ID
	}
	if len(bad) == 0 {
		return false
	}
	diag := "unknown critical option"
	for i, b := range bad {
		if i == 0 {
			diag += " " + b
		} else {
			diag += "," + b
		}
	}
	setDiagnostic(resp, codes.BadOption, diag)
	return true
}

// knownCritical is the set of critical options understood: those go-coap
// defines except Q-Block (RFC 9177 is not supported), plus extra. The map
// value is true for extra options, whose length the handler checks.
func knownCritical(extra []message.OptionID) map[message.OptionID]bool {
	m := make(map[message.OptionID]bool)
	for id := range message.CoapOptionDefs {
		if id%2 == 1 && id != message.QBlock1 && id != message.QBlock2 {
			m[id] = false
		}
	}
	for _, id := range extra {
		m[id] = true
	}
	return m
}

// setDiagnostic makes resp a bare response with a diagnostic payload (RFC
// 7252 §5.5.2: no Content-Format).
func setDiagnostic(resp *pool.Message, code codes.Code, diag string) {
	resp.SetCode(code)
	resp.ResetOptionsTo(nil)
	resp.SetBody(nil)
	if diag != "" {
		resp.SetBody(bytes.NewReader([]byte(diag)))
	}
}

// suppressed reports whether the request's No-Response option (RFC 7967)
// suppresses a response with code.
func suppressed(req *pool.Message, code codes.Code) bool {
	v, err := req.Options().GetUint32(message.NoResponse)
	if err != nil {
		return false
	}
	return errors.Is(noresponse.IsNoResponseCode(code, v), noresponse.ErrMessageNotInterested)
}

// scopedToken derives an 8-byte token for (peer, token) with a keyed hash,
// so a peer cannot aim its token at another peer's transfer.
func (l *Layer[P]) scopedToken(peer string, token message.Token) message.Token {
	var h maphash.Hash
	h.SetSeed(l.seed)
	_, _ = h.WriteString(peer)
	_ = h.WriteByte(0)
	_, _ = h.Write(token)
	return binary.BigEndian.AppendUint64(make(message.Token, 0, 8), h.Sum64())
}

// keyAddr presents a peer key as a net.Addr to the block-wise engine.
type keyAddr string

func (k keyAddr) Network() string { return "coap" }
func (k keyAddr) String() string  { return string(k) }
