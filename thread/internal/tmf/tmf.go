// Package tmf runs CoAP in both directions over one DTLS association, as
// MeshCoP does between a Commissioner and a Border Agent: the commissioner
// sends COMM_PET, COMM_KA, MGMT_COMMISSIONER_SET and RLY_TX.ntf; the Border
// Agent sends RLY_RX.ntf on the same association (Thread 1.4 §8.2, "Thread
// Management Framework"; OpenThread src/core/meshcop/border_agent.cpp,
// ot-commissioner src/library/commissioner_impl.cpp mBrClient).
//
// coap.Client cannot do this: it answers requests from the server with
// 4.04 and sends only Confirmable requests, while OpenThread's Border Agent
// drops an RLY_TX that is not Non-confirmable (border_agent.cpp
// HandleTmf<kUriRelayTx>: IsNonConfirmablePostRequest). A Session wraps
// go-coap's UDP connection engine over the pion DTLS connection, serves
// incoming requests with a coap.Handler and sends both kinds.
//
// Block-wise transfer is off: MeshCoP endpoints do not implement it, and
// an RLY_TX must reach the Border Agent as one message.
package tmf

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
)

// Errors of a Session.
var (
	// ErrClosed: the session is closed or its association ended.
	ErrClosed = errors.New("tmf: session closed")
	// ErrRequest: the request cannot be sent (not a request code, bad
	// path, too large).
	ErrRequest = errors.New("tmf: invalid request")
)

// DefaultMaxMessage bounds a CoAP message on the session. An RLY_TX
// carries one DTLS record of up to the registrar's MTU (1024) plus about 30
// bytes of TLVs and CoAP header.
const DefaultMaxMessage = 2048

// Config configures a Session.
type Config struct {
	// Handler serves requests the peer sends; nil answers 4.04.
	Handler coap.Handler
	// Log receives session events at debug level.
	Log zerolog.Logger
	// Transmission are the RFC 7252 §4.8 parameters of Confirmable
	// requests (zero: RFC 7252's defaults, ACK_TIMEOUT 2 s).
	Transmission coap.Transmission
	// MaxMessage bounds a message in either direction (default
	// DefaultMaxMessage).
	MaxMessage int
	// ID labels the session in coap.Peer.Session.
	ID string
	// NonConfirmableOnly lists paths that accept only Non-confirmable
	// requests (notifications); a Confirmable one is refused with 4.00
	// and not handled. OpenThread's Border Agent drops a Confirmable
	// RLY_TX silently (border_agent.cpp HandleTmf<kUriRelayTx>).
	NonConfirmableOnly []string
}

// Session is one MeshCoP CoAP session over an established DTLS
// association. It is safe for concurrent use.
type Session struct {
	cc    *udpclient.Conn
	peer  coap.Peer
	h     coap.Handler
	non   map[string]bool
	log   zerolog.Logger
	max   int
	stop  chan struct{}
	once  sync.Once
	ctx   context.Context
	abort context.CancelFunc
}

// New runs a Session on conn, whose handshake must be complete. The
// Session owns conn: Close closes it.
func New(conn *dtls.Conn, cfg Config) (*Session, error) {
	state, ok := conn.ConnectionState()
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: handshake not complete", ErrClosed)
	}
	chain := make([]*x509.Certificate, 0, len(state.PeerCertificates))
	for _, der := range state.PeerCertificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("tmf: peer certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	t := cfg.Transmission
	if t == (coap.Transmission{}) {
		t = coap.Transmission{AckTimeout: 2 * time.Second, RandomFactor: 1.5, MaxRetransmit: 4}
	}
	ctx, abort := context.WithCancel(context.Background())
	s := &Session{
		peer:  coap.Peer{Addr: conn.RemoteAddr(), Chain: chain, Session: cfg.ID},
		h:     cfg.Handler,
		non:   make(map[string]bool),
		log:   cfg.Log,
		max:   cfg.MaxMessage,
		stop:  make(chan struct{}),
		ctx:   ctx,
		abort: abort,
	}
	for _, p := range cfg.NonConfirmableOnly {
		s.non[p] = true
	}
	tick := min(max(t.AckTimeout/4, 10*time.Millisecond), time.Second)
	s.cc = coapdtls.Client(conn,
		options.WithHandlerFunc(s.serve),
		options.WithErrors(func(err error) { s.log.Debug().Err(err).Msg("tmf session") }),
		options.WithPeriodicRunner(periodic.New(s.stop, tick)),
		options.WithTransmission(1, t.AckTimeout, uint32(t.MaxRetransmit), t.RandomFactor),
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithMaxMessageSize(uint32(cfg.MaxMessage)),
		options.WithMTU(uint16(cfg.MaxMessage)),
		options.WithCloseSocket(),
	)
	return s, nil
}

// Peer is the remote end: address, verified certificate chain, session ID.
func (s *Session) Peer() coap.Peer { return s.peer }

// Done is closed when the session ends (Close, the peer's close_notify, a
// transport error).
func (s *Session) Done() <-chan struct{} { return s.cc.Done() }

// Close ends the session and closes the DTLS association.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		s.abort()
		err = s.cc.Close()
		<-s.cc.Done()
		close(s.stop)
	})
	return err
}

// Do sends r as a Confirmable request and waits for the response. A 4.xx
// or 5.xx answer is a Response, not an error.
func (s *Session) Do(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	req, err := s.build(ctx, r, message.Confirmable)
	if err != nil {
		return nil, err
	}
	defer s.cc.ReleaseMessage(req)
	resp, err := s.cc.Do(req)
	if err != nil {
		return nil, s.sendErr(r, err)
	}
	defer s.cc.ReleaseMessage(resp)
	out := &coap.Response{Code: resp.Code(), ContentFormat: coap.FormatNone}
	if cf, err := resp.Options().ContentFormat(); err == nil {
		out.ContentFormat = int(cf)
	}
	if resp.Body() != nil {
		if out.Payload, err = resp.ReadBody(); err != nil {
			return nil, fmt.Errorf("tmf: %s response: %w", r.Path, err)
		}
	}
	return out, nil
}

// Notify sends r as a Non-confirmable request (a MeshCoP ".ntf") and does
// not wait for anything.
func (s *Session) Notify(ctx context.Context, r *coap.Request) error {
	req, err := s.build(ctx, r, message.NonConfirmable)
	if err != nil {
		return err
	}
	defer s.cc.ReleaseMessage(req)
	if err := s.cc.WriteMessage(req); err != nil {
		return s.sendErr(r, err)
	}
	return nil
}

func (s *Session) sendErr(r *coap.Request, err error) error {
	select {
	case <-s.cc.Done():
		return fmt.Errorf("%w: %s: %w", ErrClosed, r.Path, err)
	default:
		return fmt.Errorf("tmf: %v %s: %w", r.Method, r.Path, err)
	}
}

// build makes a pool message of r with type typ.
func (s *Session) build(ctx context.Context, r *coap.Request, typ message.Type) (*pool.Message, error) {
	select {
	case <-s.cc.Done():
		return nil, ErrClosed
	default:
	}
	if r == nil || r.Method < codes.GET || r.Method>>5 != 0 {
		return nil, fmt.Errorf("%w: method must be a request code", ErrRequest)
	}
	if len(r.Payload) > s.max-64 {
		return nil, fmt.Errorf("%w: %d-byte payload exceeds the session's %d-byte messages", ErrRequest, len(r.Payload), s.max)
	}
	token, err := message.GetToken()
	if err != nil {
		return nil, fmt.Errorf("tmf: token: %w", err)
	}
	req := s.cc.AcquireMessage(ctx)
	req.SetCode(r.Method)
	req.SetToken(token)
	req.SetType(typ)
	if err := req.SetPath(r.Path); err != nil {
		s.cc.ReleaseMessage(req)
		return nil, fmt.Errorf("%w: path %q: %w", ErrRequest, r.Path, err)
	}
	if r.ContentFormat != coap.FormatNone && r.ContentFormat >= 0 {
		req.SetContentFormat(message.MediaType(r.ContentFormat))
	}
	if len(r.Payload) > 0 {
		req.SetBody(bytes.NewReader(r.Payload))
	}
	return req, nil
}

// serve adapts a request from the peer to the Handler. Non-confirmable
// requests (MeshCoP notifications) get no answer, whatever the handler
// returns; Confirmable ones get its response or the code of its error.
func (s *Session) serve(w *responsewriter.ResponseWriter[*udpclient.Conn], m *pool.Message) {
	if m.Code() < codes.GET || m.Code()>>5 != 0 {
		return // a response or a ping: go-coap routes those itself
	}
	r := &coap.Request{Method: m.Code(), Path: "/", ContentFormat: coap.FormatNone, Accept: coap.FormatNone, Peer: s.peer}
	if p, err := m.Options().Path(); err == nil {
		r.Path = p
	}
	if cf, err := m.Options().ContentFormat(); err == nil {
		r.ContentFormat = int(cf)
	}
	var res *coap.Response
	var err error
	if m.Body() != nil {
		r.Payload, err = m.ReadBody()
		if err != nil {
			err = coap.Errorf(codes.BadRequest, "unreadable payload", err)
		}
	}
	if err == nil && m.Type() == message.Confirmable && s.non[r.Path] {
		err = coap.Errorf(codes.BadRequest, r.Path+" must be Non-confirmable", nil)
	}
	if err == nil {
		res, err = s.call(r)
	}
	if m.Type() == message.NonConfirmable {
		if err != nil {
			s.log.Debug().Err(err).Str("path", r.Path).Msg("notification refused")
		}
		return
	}
	code, cf, payload := codes.Changed, coap.FormatNone, []byte(nil)
	switch {
	case err != nil:
		var diag string
		code, diag = coap.CodeOf(err)
		payload = []byte(diag)
		s.log.Debug().Err(err).Str("path", r.Path).Msg("request refused")
	case res != nil:
		code, cf, payload = res.Code, res.ContentFormat, res.Payload
	}
	var body *bytes.Reader
	if len(payload) > 0 {
		body = bytes.NewReader(payload)
	}
	if cf == coap.FormatNone {
		w.Message().SetCode(code)
		if body != nil {
			w.Message().SetBody(body)
		}
		return
	}
	if body == nil {
		body = bytes.NewReader(nil)
	}
	if err := w.SetResponse(code, message.MediaType(cf), body); err != nil {
		s.log.Debug().Err(err).Msg("tmf response")
	}
}

// call runs the handler, turning a panic into an internal error.
func (s *Session) call(r *coap.Request) (res *coap.Response, err error) {
	if s.h == nil {
		return nil, coap.Errorf(codes.NotFound, "no such resource", nil)
	}
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("tmf: handler panic: %v", p)
		}
	}()
	return s.h.ServeCoAP(s.ctx, r)
}
