package coap

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap/internal/msglayer"
)

// Server serves a Handler over CoAP: ServeUDP for plain CoAP, ServeDTLS for
// CoAP over DTLS with client certificates, on any net.PacketConn. One
// Server may serve several listeners at once; Close stops them all.
type Server struct {
	h       Handler
	cfg     serverConfig
	log     zerolog.Logger
	reqLog  zerolog.Logger // rate-limited, for per-request lines
	metrics *metrics

	sessionPrefix string
	sessionSeq    atomic.Uint64

	mu     sync.Mutex
	closed bool
	runs   map[uint64]context.CancelFunc
	runSeq uint64
}

// NewServer returns a Server for h configured by opts.
func NewServer(h Handler, opts ...ServerOption) (*Server, error) {
	if h == nil {
		return nil, invalid("nil handler")
	}
	cfg := defaultServerConfig()
	for _, o := range opts {
		if o == nil {
			return nil, invalid("nil option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.workers == 0 {
		cfg.workers = 8 * runtime.GOMAXPROCS(0)
	}
	var prefix [4]byte
	if _, err := io.ReadFull(cfg.rand, prefix[:]); err != nil {
		return nil, fmt.Errorf("coap: read randomness: %w", err)
	}
	m, err := newMetrics(cfg.registerer)
	if err != nil {
		return nil, err
	}
	log := cfg.log.With().Str("component", "coap").Logger()
	return &Server{
		h:       h,
		cfg:     cfg,
		log:     log,
		reqLog:  log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second}),
		metrics: m,
		// Session identifiers are unique per Server: a random prefix (so
		// they differ across restarts) and a counter.
		sessionPrefix: hex.EncodeToString(prefix[:]),
		runs:          make(map[uint64]context.CancelFunc),
	}, nil
}

// Close stops every ServeDTLS and ServeUDP call of this server and cancels
// the contexts of running handlers. Serve calls return nil. Close does not
// wait for them to return.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, cancel := range s.runs {
		cancel()
	}
	return nil
}

// begin registers a serving loop. It returns the loop's context (cancelled
// by Close), a function to call when the loop ends, and false if the
// server is closed.
func (s *Server) begin(ctx context.Context) (context.Context, func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, false
	}
	run, cancel := context.WithCancel(ctx)
	id := s.runSeq
	s.runSeq++
	s.runs[id] = cancel
	return run, func() {
		cancel()
		s.mu.Lock()
		delete(s.runs, id)
		s.mu.Unlock()
	}, true
}

func (s *Server) newSessionID() string {
	return fmt.Sprintf("%s-%d", s.sessionPrefix, s.sessionSeq.Add(1))
}

// layerConfig is the message layer configuration for one listener.
func (s *Server) layerConfig(mtu, overhead int) (msglayer.Config, error) {
	var mid [2]byte
	if _, err := io.ReadFull(s.cfg.rand, mid[:]); err != nil {
		return msglayer.Config{}, fmt.Errorf("coap: read randomness: %w", err)
	}
	block := blockSizeFor(mtu - overhead)
	if s.cfg.blockSize > 0 {
		block = min(block, s.cfg.blockSize)
	}
	return msglayer.Config{
		BlockSZX:         szxOf(block),
		MaxBody:          s.cfg.maxPayload,
		ExchangeLifetime: s.cfg.exchangeLifetime,
		DedupEntries:     s.cfg.dedupEntries,
		Critical:         s.cfg.critical,
		InitialMID:       binary.BigEndian.Uint16(mid[:]),
		Now:              s.cfg.now,
		Errors: func(err error) {
			s.log.Debug().Err(err).Msg("block-wise transfer")
		},
	}, nil
}

// coapOverhead is what a CoAP response needs besides its payload: header,
// 8-byte token, Block2, Size2, Content-Format, ETag and a margin.
const coapOverhead = 64

// blockSizeFor is the largest block size (16..1024) not above room.
func blockSizeFor(room int) int {
	size := 1024
	for size > 16 && size > room {
		size /= 2
	}
	return size
}

// szxOf maps a block size to its SZX exponent (RFC 7959 §2.2).
func szxOf(size int) blockwise.SZX {
	szx := blockwise.SZX16
	for s := 16; s < size; s *= 2 {
		szx++
	}
	return szx
}

// housekeep expires duplicate and block-wise state until ctx ends.
func (s *Server) housekeep(ctx context.Context, expire func(time.Time)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			expire(s.cfg.now())
		}
	}
}

// serveRequest is the edge between the message layer and the Handler: it
// decodes req into a Request, calls the handler and encodes its answer or
// error into resp. Errors become codes here, and only here.
func (s *Server) serveRequest(ctx context.Context, transport string, peer Peer, req, resp *pool.Message) {
	r, err := decodeRequest(req, peer)
	if err != nil {
		s.answerError(transport, r, resp, err)
		return
	}
	res, err := s.call(ctx, r)
	if err != nil {
		s.answerError(transport, r, resp, err)
		return
	}
	if res == nil {
		resp.SetCode(codes.Changed)
		return
	}
	if c := res.Code; c>>5 < 2 || c>>5 > 5 {
		s.answerError(transport, r, resp, fmt.Errorf("handler returned non-response code %s", codeString(c)))
		return
	}
	if err := encodeResponse(res, resp); err != nil {
		s.answerError(transport, r, resp, err)
	}
}

// call runs the handler, turning a panic into an internal error.
func (s *Server) call(ctx context.Context, r *Request) (res *Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Str("path", r.Path).Msg("handler panicked")
			res, err = nil, fmt.Errorf("handler panic: %v", p)
		}
	}()
	return s.h.ServeCoAP(ctx, r)
}

// answerError maps err to a code and diagnostic (RFC 7252 §5.5.2: no
// Content-Format) and logs the full error once.
func (s *Server) answerError(transport string, r *Request, resp *pool.Message, err error) {
	code, diag := CodeOf(err)
	resp.SetCode(code)
	resp.ResetOptionsTo(nil)
	resp.SetBody(nil)
	if diag != "" {
		resp.SetBody(bytes.NewReader([]byte(diag)))
	}
	ev := s.reqLog.Info()
	if code>>5 >= 5 {
		ev = s.reqLog.Error()
	}
	ev = ev.Str("transport", transport).Str("code", codeString(code)).Err(err)
	if r != nil {
		ev = ev.Str("method", r.Method.String()).Str("path", r.Path).Str("session", r.Peer.Session)
		if r.Peer.Addr != nil {
			ev = ev.Str("peer", r.Peer.Addr.String())
		}
	}
	ev.Msg("request failed")
}

// decodeRequest builds the Request handlers see. On error it still returns
// what it could decode, for the log.
func decodeRequest(req *pool.Message, peer Peer) (*Request, error) {
	r := &Request{
		Method:        req.Code(),
		Path:          "/",
		ContentFormat: FormatNone,
		Accept:        FormatNone,
		Peer:          peer,
	}
	opts := req.Options()
	r.Options = make(message.Options, len(opts))
	for i, o := range opts {
		r.Options[i] = message.Option{ID: o.ID, Value: bytes.Clone(o.Value)}
	}
	switch path, err := opts.Path(); {
	case err == nil:
		r.Path = path
	case !errors.Is(err, message.ErrOptionNotFound):
		return r, Errorf(codes.BadRequest, "invalid Uri-Path", err)
	}
	switch q, err := opts.Queries(); {
	case err == nil:
		r.Query = q
	case !errors.Is(err, message.ErrOptionNotFound):
		return r, Errorf(codes.BadRequest, "invalid Uri-Query", err)
	}
	if cf, err := opts.ContentFormat(); err == nil {
		r.ContentFormat = int(cf)
	}
	if a, err := opts.Accept(); err == nil {
		r.Accept = int(a)
	}
	if req.Body() != nil {
		payload, err := req.ReadBody()
		if err != nil {
			return r, Errorf(codes.BadRequest, "unreadable payload", err)
		}
		r.Payload = payload
	}
	return r, nil
}

// encodeResponse writes res into resp.
func encodeResponse(res *Response, resp *pool.Message) error {
	opts := make(message.Options, 0, len(res.Options)+1)
	for _, o := range res.Options {
		if o.ID != message.ContentFormat {
			opts = append(opts, o)
		}
	}
	resp.SetCode(res.Code)
	resp.ResetOptionsTo(opts)
	if res.ContentFormat != FormatNone {
		if res.ContentFormat < 0 || res.ContentFormat > 0xffff {
			return fmt.Errorf("handler returned Content-Format %d", res.ContentFormat)
		}
		resp.SetContentFormat(message.MediaType(res.ContentFormat))
	}
	resp.SetBody(nil)
	if len(res.Payload) > 0 {
		resp.SetBody(bytes.NewReader(res.Payload))
	}
	return nil
}
