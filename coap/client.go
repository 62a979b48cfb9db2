package coap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap/internal/pionlog"
)

// ClientDTLSConfig configures DialDTLS.
type ClientDTLSConfig struct {
	// Certificate is the client certificate chain (leaf first) and key,
	// for a pledge its IDevID. It is presented whenever the server asks
	// for a certificate, whatever CA names the server lists. The zero
	// value presents no certificate.
	Certificate tls.Certificate
	// RootCAs verifies the server's certificate. Exactly one of RootCAs
	// and InsecureSkipVerify must be set.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any server certificate. A cBRSKI pledge
	// does this ("provisional" DTLS, cbrski.md §1.2) and validates
	// PeerChain against the voucher's pinned domain certificate before it
	// trusts anything it received.
	InsecureSkipVerify bool
	// MTU bounds handshake flights and sets the block size (default
	// DefaultDTLSMTU).
	MTU int
	// HandshakeTimeout bounds the handshake in addition to the dial
	// context (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// FlightInterval is the initial handshake retransmission interval; if
	// zero, the link's (FlightIntervalHinter) or pion's default, 1 s.
	FlightInterval time.Duration
	// ConnectionID offers RFC 9146 connection IDs: if the server asks for
	// them, the client adds the server's CID to its records so that the
	// association survives an address change. The client does not ask the
	// server for CIDs in return.
	ConnectionID bool
}

// Transmission holds the RFC 7252 §4.8 parameters for Confirmable
// requests. Without WithTransmission a client uses RFC 7252's defaults:
// {2 s, 1.5, 4}.
type Transmission struct {
	// AckTimeout is ACK_TIMEOUT (default 2 s).
	AckTimeout time.Duration
	// RandomFactor is ACK_RANDOM_FACTOR, at least 1 (default 1.5).
	RandomFactor float64
	// MaxRetransmit is MAX_RETRANSMIT (default 4).
	MaxRetransmit int
}

// defaultTransmission is RFC 7252's default.
var defaultTransmission = Transmission{AckTimeout: 2 * time.Second, RandomFactor: 1.5, MaxRetransmit: 4}

// ClientOption configures a Client. Options validate their arguments; the
// Dial functions return the first error, wrapping ErrInvalidOption.
type ClientOption func(*clientConfig) error

type clientConfig struct {
	log          zerolog.Logger
	transmission Transmission
	blockSize    int
}

// WithClientLogger sets the client's logger. The zero Logger discards.
func WithClientLogger(l zerolog.Logger) ClientOption {
	return func(c *clientConfig) error {
		c.log = l
		return nil
	}
}

// WithTransmission sets the retransmission parameters of Confirmable
// requests, for lossy links.
func WithTransmission(t Transmission) ClientOption {
	return func(c *clientConfig) error {
		if t.AckTimeout <= 0 || t.RandomFactor < 1 || t.MaxRetransmit < 0 || t.MaxRetransmit > 32 {
			return invalid("transmission %+v", t)
		}
		c.transmission = t
		return nil
	}
}

// WithClientBlockSize caps the block size (RFC 7959) the client uses, a
// power of two from 16 to 1024. By default it is the largest that fits the
// MTU (ClientDTLSConfig.MTU, or DefaultUDPMTU for plain CoAP).
func WithClientBlockSize(n int) ClientOption {
	return func(c *clientConfig) error {
		if n < 16 || n > 1024 || bits.OnesCount(uint(n)) != 1 {
			return invalid("block size %d is not a power of two in [16,1024]", n)
		}
		c.blockSize = n
		return nil
	}
}

// Client is a CoAP client over one DTLS association or one plain CoAP
// peer. It uses go-coap's client engine: Confirmable requests are
// retransmitted, large payloads go block-wise in both directions. It is
// safe for concurrent use.
type Client struct {
	cc    *udpclient.Conn
	chain []*x509.Certificate
	// block is the largest block the client sends or asks for.
	block int
	// maxWait bounds one Confirmable exchange: MAX_TRANSMIT_WAIT plus
	// PROCESSING_DELAY.
	maxWait time.Duration
	// backstop bounds a Do whose context has no deadline.
	backstop time.Duration
	log      zerolog.Logger
	stop     chan struct{}
	closed   atomic.Bool
	once     sync.Once
}

// DialDTLS runs a DTLS handshake with raddr over pc and returns a Client
// on the association. The Client owns pc: Close closes it, and so does a
// failed dial. A failed handshake returns an error wrapping ErrHandshake
// and pion's error.
func DialDTLS(ctx context.Context, pc net.PacketConn, raddr net.Addr, cfg ClientDTLSConfig, opts ...ClientOption) (*Client, error) {
	ccfg, err := clientOptions(opts)
	if err == nil {
		err = checkClientDTLS(&cfg)
	}
	if err == nil && raddr == nil {
		err = invalid("nil remote address")
	}
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	dopts := []dtls.ClientOption{
		dtls.WithCipherSuites(cipherSuites...),
		dtls.WithMTU(cfg.MTU),
		dtls.WithLoggerFactory(pionlog.Factory{Log: ccfg.log}),
	}
	if len(cfg.Certificate.Certificate) > 0 {
		// Present the certificate whatever CA names the server lists: a
		// pledge has one identity, and a registrar may accept IDevIDs of
		// manufacturers it does not name (pion would otherwise send none).
		cert := cfg.Certificate
		dopts = append(dopts, dtls.WithGetClientCertificate(func(*dtls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}))
	}
	if cfg.InsecureSkipVerify {
		dopts = append(dopts, dtls.WithInsecureSkipVerify(true))
	} else {
		dopts = append(dopts, dtls.WithRootCAs(cfg.RootCAs))
	}
	switch h, ok := pc.(FlightIntervalHinter); {
	case cfg.FlightInterval > 0:
		dopts = append(dopts, dtls.WithFlightInterval(cfg.FlightInterval))
	case ok && h.DTLSFlightInterval() > 0:
		dopts = append(dopts, dtls.WithFlightInterval(h.DTLSFlightInterval()))
	}
	if cfg.ConnectionID {
		dopts = append(dopts, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
	}
	conn, err := dtls.ClientWithOptions(pc, raddr, dopts...)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	err = conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w with %v: %w", ErrHandshake, raddr, err)
	}
	state, _ := conn.ConnectionState()
	chain, err := parseChain(state.PeerCertificates)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w with %v: server chain: %w", ErrHandshake, raddr, err)
	}
	block := blockSizeFor(cfg.MTU - dtlsRecordOverhead - coapOverhead)
	c := newClient(conn, ccfg, block)
	c.chain = chain
	return c, nil
}

func checkClientDTLS(cfg *ClientDTLSConfig) error {
	if (cfg.RootCAs == nil) == !cfg.InsecureSkipVerify {
		return invalid("set exactly one of ClientDTLSConfig.RootCAs and InsecureSkipVerify")
	}
	if len(cfg.Certificate.Certificate) > 0 && cfg.Certificate.PrivateKey == nil {
		return invalid("ClientDTLSConfig.Certificate has no private key")
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultDTLSMTU
	}
	if cfg.MTU < 256 || cfg.MTU > 65535 {
		return invalid("ClientDTLSConfig.MTU %d not in [256,65535]", cfg.MTU)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.HandshakeTimeout < 0 || cfg.FlightInterval < 0 {
		return invalid("negative DTLS timeout")
	}
	return nil
}

// DialUDP returns a plain CoAP Client for raddr over pc; datagrams on pc
// from other addresses are ignored. The Client owns pc: Close closes it.
// ctx is not used: plain CoAP has no connection setup; it is taken for
// symmetry with DialDTLS.
func DialUDP(ctx context.Context, pc net.PacketConn, raddr net.Addr, opts ...ClientOption) (*Client, error) {
	_ = ctx
	ccfg, err := clientOptions(opts)
	if err == nil && raddr == nil {
		err = invalid("nil remote address")
	}
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	conn := &connectedConn{pc: pc, raddr: raddr, key: raddr.String()}
	return newClient(conn, ccfg, blockSizeFor(DefaultUDPMTU-coapOverhead)), nil
}

func clientOptions(opts []ClientOption) (clientConfig, error) {
	c := clientConfig{log: zerolog.Nop(), transmission: defaultTransmission}
	for _, o := range opts {
		if o == nil {
			return c, invalid("nil option")
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	c.log = c.log.With().Str("component", "coap-client").Logger()
	return c, nil
}

// clientReadBuffer is the largest datagram or record the client reads.
const clientReadBuffer = maxDatagram

// newClient runs go-coap's UDP client engine over conn.
func newClient(conn net.Conn, ccfg clientConfig, block int) *Client {
	if ccfg.blockSize > 0 {
		block = min(block, ccfg.blockSize)
	}
	t := ccfg.transmission
	c := &Client{log: ccfg.log, stop: make(chan struct{}), backstop: exchangeLifetime(t), block: block, maxWait: maxTransmitWait(t)}
	// Retransmissions are driven by the periodic runner, so it must tick
	// well within ACK_TIMEOUT.
	tick := min(max(t.AckTimeout/4, 10*time.Millisecond), time.Second)
	errorsFn := func(err error) {
		if !coapnet.IsCancelOrCloseError(err) {
			c.log.Debug().Err(err).Msg("coap client")
		}
	}
	cfg := udpclient.DefaultConfig
	for _, o := range []udp.Option{
		options.WithErrors(errorsFn),
		options.WithPeriodicRunner(periodic.New(c.stop, tick)),
		options.WithTransmission(1, t.AckTimeout, uint32(t.MaxRetransmit), t.RandomFactor),
		// Block-wise transfers are the client's own (Do): go-coap sends
		// continuation blocks from its response handler, outside its
		// retransmission state, so one lost block stalls the transfer.
		options.WithBlockwise(false, szxOf(block), DefaultBlockTransferTimeout),
		options.WithMTU(clientReadBuffer),
		options.WithMaxMessageSize(clientReadBuffer),
	} {
		o.UDPClientApply(&cfg)
	}
	// Requests from the server are not served by a client.
	cfg.Handler = func(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
		if r.Code() >= codes.GET && r.Code() <= codes.IPATCH {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		}
	}
	cfg.MessagePool = pool.New(0, 0)
	session := dtlsserver.NewSession(context.Background(), coapnet.NewConn(conn), cfg.MaxMessageSize, cfg.MTU, true)
	cc := udpclient.NewConnWithOpts(session, &cfg,
		udpclient.WithInactivityMonitor(inactivity.NewNilMonitor[*udpclient.Conn]()),
		udpclient.WithRequestMonitor(cfg.RequestMonitor),
	)
	cfg.PeriodicRunner(func(now time.Time) bool {
		cc.CheckExpirations(now)
		return cc.Context().Err() == nil
	})
	go func() {
		if err := cc.Run(); err != nil && !c.closed.Load() {
			c.log.Debug().Err(err).Msg("coap client connection ended")
		}
	}()
	c.cc = cc
	return c
}

// maxTransmitWait is MAX_TRANSMIT_WAIT for t (RFC 7252 §4.8.2): from the
// first transmission to giving up on an acknowledgement, plus
// PROCESSING_DELAY (ACK_TIMEOUT) for the piggybacked response.
func maxTransmitWait(t Transmission) time.Duration {
	return time.Duration(float64(t.AckTimeout)*float64(int64(1)<<(t.MaxRetransmit+1)-1)*t.RandomFactor) + t.AckTimeout
}

// exchangeLifetime is EXCHANGE_LIFETIME for t (RFC 7252 §4.8.2):
// MAX_TRANSMIT_SPAN + 2 * MAX_LATENCY + PROCESSING_DELAY.
func exchangeLifetime(t Transmission) time.Duration {
	const maxLatency = 100 * time.Second
	span := time.Duration(float64(t.AckTimeout) * float64(int64(1)<<t.MaxRetransmit-1) * t.RandomFactor)
	return span + 2*maxLatency + t.AckTimeout
}

// DefaultBlockTransferTimeout bounds an unfinished block-wise transfer on
// the client.
const DefaultBlockTransferTimeout = 30 * time.Second

// PeerChain returns the certificate chain the server presented in the DTLS
// handshake, leaf first (nil on plain CoAP). With InsecureSkipVerify it is
// unverified.
func (c *Client) PeerChain() []*x509.Certificate { return c.chain }

// Do sends r and waits for the response. It uses r's Method, Path, Query,
// ContentFormat and Accept (sent unless FormatNone), Options and Payload;
// Path, Query, ContentFormat and Accept replace the corresponding options
// in r.Options. A 4.xx or 5.xx answer is a Response, not an error; its
// payload is the server's diagnostic. Transport failures, timeouts and ctx
// expiry are errors; an exchange whose retransmissions all go
// unacknowledged fails with ErrNoResponse after MAX_TRANSMIT_WAIT (93 s
// with the default Transmission). Without a ctx deadline the whole Do,
// block-wise transfers included, gives up after EXCHANGE_LIFETIME.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	if c.closed.Load() {
		return nil, ErrClientClosed
	}
	if r == nil || r.Method < codes.GET || r.Method>>5 != 0 {
		return nil, fmt.Errorf("%w: method must be a request code", ErrInvalidRequest)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.backstop)
		defer cancel()
	}
	token, err := message.GetToken()
	if err != nil {
		return nil, fmt.Errorf("coap: token: %w", err)
	}
	return c.blockwise(ctx, r, token)
}

// MaxResponseBody bounds a response reassembled from Block2 blocks.
const MaxResponseBody = 1 << 20

// blockwise runs one request as RFC 7959 block-wise transfers: the body in
// Block1 blocks, each acknowledged (2.31 Continue) before the next, then
// the response's Block2 blocks fetched one by one. Every block is its own
// Confirmable exchange, retransmitted until acknowledged; all carry the
// request's token. The server may ask for smaller blocks; the client
// follows.
func (c *Client) blockwise(ctx context.Context, r *Request, token message.Token) (*Response, error) {
	size := c.block
	body := r.Payload
	var resp *Response
	for off := 0; ; {
		var b1 *blockOpt
		chunk := body
		if len(body) > size {
			end := min(off+size, len(body))
			chunk = body[off:end]
			b1 = &blockOpt{num: off / size, more: end < len(body), size: size}
		}
		var err error
		resp, err = c.exchange(ctx, r, token, chunk, b1, nil)
		if err != nil {
			return nil, err
		}
		if b1 == nil || !b1.more {
			break
		}
		if resp.Code != codes.Continue {
			return resp, nil // the server refused mid-transfer (4.08, 4.13, ...)
		}
		off += size
		if got, ok := blockOf(resp.Options, message.Block1); ok && got.size < size {
			// The server wants smaller blocks: continue at the same offset.
			size = got.size
		}
	}
	b2, ok := blockOf(resp.Options, message.Block2)
	if !ok || !b2.more {
		return resp, nil
	}
	if b2.num != 0 {
		return nil, fmt.Errorf("coap: %v %s: response starts at block %d", r.Method, r.Path, b2.num)
	}
	payload := append([]byte(nil), resp.Payload...)
	for b2.more {
		next := &blockOpt{num: len(payload) / b2.size, size: b2.size}
		if len(payload)%b2.size != 0 {
			return nil, fmt.Errorf("coap: %v %s: Block2 of %d bytes is not a whole block", r.Method, r.Path, len(resp.Payload))
		}
		part, err := c.exchange(ctx, r, token, nil, nil, next)
		if err != nil {
			return nil, err
		}
		if part.Code != resp.Code {
			return part, nil
		}
		got, ok := blockOf(part.Options, message.Block2)
		if !ok || got.num*got.size != len(payload) {
			return nil, fmt.Errorf("coap: %v %s: Block2 out of sequence", r.Method, r.Path)
		}
		if len(payload)+len(part.Payload) > MaxResponseBody {
			return nil, fmt.Errorf("coap: %v %s: response larger than %d bytes", r.Method, r.Path, MaxResponseBody)
		}
		payload = append(payload, part.Payload...)
		b2 = got
	}
	resp.Payload = payload
	return resp, nil
}

// blockOpt is a Block1 or Block2 option value (RFC 7959 §2.2).
type blockOpt struct {
	num  int
	more bool
	size int
}

func (b blockOpt) encode() uint32 {
	v := uint32(b.num)<<4 | uint32(szxOf(b.size))
	if b.more {
		v |= 8
	}
	return v
}

func blockOf(opts message.Options, id message.OptionID) (blockOpt, bool) {
	v, err := opts.GetUint32(id)
	if err != nil || v&7 == 7 {
		return blockOpt{}, false
	}
	return blockOpt{num: int(v >> 4), more: v&8 != 0, size: 16 << (v & 7)}, true
}

// exchange sends one Confirmable request (one block) and waits for its
// response.
func (c *Client) exchange(ctx context.Context, r *Request, token message.Token, payload []byte, b1, b2 *blockOpt) (*Response, error) {
	// go-coap stops retransmitting after MAX_RETRANSMIT but never tells
	// the waiting request: bound the exchange ourselves.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.maxWait)
	defer cancel()
	req := c.cc.AcquireMessage(ctx)
	defer c.cc.ReleaseMessage(req)
	if err := buildRequest(req, r); err != nil {
		return nil, err
	}
	req.SetToken(token)
	if payload != nil {
		req.SetBody(bytes.NewReader(payload))
	} else if b2 != nil {
		req.SetBody(nil)
	}
	if b1 != nil {
		req.SetOptionUint32(message.Block1, b1.encode())
		req.SetOptionUint32(message.Size1, uint32(len(r.Payload)))
	}
	if b2 != nil {
		req.SetOptionUint32(message.Block2, b2.encode())
	}
	for stale := 0; ; stale++ {
		resp, err := c.cc.Do(req)
		if err != nil {
			if c.closed.Load() {
				return nil, fmt.Errorf("%w: %w", ErrClientClosed, err)
			}
			if parent.Err() == nil && ctx.Err() != nil {
				return nil, fmt.Errorf("coap: %v %s: %w after %v", r.Method, r.Path, ErrNoResponse, c.maxWait)
			}
			return nil, fmt.Errorf("coap: %v %s: %w", r.Method, r.Path, err)
		}
		// Every block of a transfer carries the same token, and go-coap
		// hands a response to whoever waits on its token. When a block's
		// request was retransmitted while its answer was only slow, the
		// second, late answer (an ACK with that earlier message ID) takes
		// the place of this block's, which go-coap then drops. Ask again
		// with this message ID: the server answers from its deduplication
		// cache, without running the handler twice.
		if resp.Type() == message.Acknowledgement && resp.MessageID() != req.MessageID() && stale < maxStaleAnswers {
			c.cc.ReleaseMessage(resp)
			continue
		}
		defer c.cc.ReleaseMessage(resp)
		return decodeResponse(resp)
	}
}

// maxStaleAnswers bounds how often one exchange is asked again after a
// late answer to an earlier block took its place.
const maxStaleAnswers = 4

func buildRequest(req *pool.Message, r *Request) error {
	req.SetCode(r.Method)
	req.SetType(message.Confirmable)
	if len(r.Options) > 0 {
		req.ResetOptionsTo(r.Options)
	}
	if r.Path != "" {
		req.Remove(message.URIPath)
		if err := req.SetPath(r.Path); err != nil {
			return fmt.Errorf("%w: path %q: %w", ErrInvalidRequest, r.Path, err)
		}
	}
	if len(r.Query) > 0 {
		req.Remove(message.URIQuery)
		for _, q := range r.Query {
			if len(q) > 255 {
				return fmt.Errorf("%w: query %q longer than 255 bytes", ErrInvalidRequest, q)
			}
			req.AddQuery(q)
		}
	}
	for _, f := range []struct {
		v   int
		set func(message.MediaType)
	}{{r.ContentFormat, req.SetContentFormat}, {r.Accept, req.SetAccept}} {
		if f.v == FormatNone {
			continue
		}
		if f.v < 0 || f.v > 0xffff {
			return fmt.Errorf("%w: content format %d", ErrInvalidRequest, f.v)
		}
		f.set(message.MediaType(f.v))
	}
	if len(r.Payload) > 0 {
		req.SetBody(bytes.NewReader(r.Payload))
	}
	return nil
}

func decodeResponse(resp *pool.Message) (*Response, error) {
	out := &Response{Code: resp.Code(), ContentFormat: FormatNone}
	opts := resp.Options()
	out.Options = make(message.Options, len(opts))
	for i, o := range opts {
		out.Options[i] = message.Option{ID: o.ID, Value: bytes.Clone(o.Value)}
	}
	if cf, err := opts.ContentFormat(); err == nil {
		out.ContentFormat = int(cf)
	}
	if resp.Body() != nil {
		payload, err := resp.ReadBody()
		if err != nil {
			return nil, fmt.Errorf("coap: read response payload: %w", err)
		}
		out.Payload = payload
	}
	return out, nil
}

// Get sends a GET for path with the given Accept (FormatNone for none).
func (c *Client) Get(ctx context.Context, path string, accept int) (*Response, error) {
	return c.Do(ctx, &Request{Method: codes.GET, Path: path, ContentFormat: FormatNone, Accept: accept})
}

// Post sends a POST of payload in format to path with the given Accept
// (FormatNone for none).
func (c *Client) Post(ctx context.Context, path string, format int, payload []byte, accept int) (*Response, error) {
	return c.Do(ctx, &Request{Method: codes.POST, Path: path, ContentFormat: format, Accept: accept, Payload: payload})
}

// Close ends the client: pending requests fail, the DTLS association is
// closed (close_notify) and pc is closed.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		c.closed.Store(true)
		err = c.cc.Close()
		<-c.cc.Done()
		close(c.stop)
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// connectedConn is a net.Conn view of a PacketConn talking to one remote
// address, for go-coap's session.
type connectedConn struct {
	pc    net.PacketConn
	raddr net.Addr
	key   string
}

func (c *connectedConn) Read(b []byte) (int, error) {
	for {
		n, addr, err := c.pc.ReadFrom(b)
		if err != nil {
			return n, err
		}
		if addr != nil && addr.String() == c.key {
			return n, nil
		}
	}
}

func (c *connectedConn) Write(b []byte) (int, error)        { return c.pc.WriteTo(b, c.raddr) }
func (c *connectedConn) Close() error                       { return c.pc.Close() }
func (c *connectedConn) LocalAddr() net.Addr                { return c.pc.LocalAddr() }
func (c *connectedConn) RemoteAddr() net.Addr               { return c.raddr }
func (c *connectedConn) SetDeadline(t time.Time) error      { return c.pc.SetDeadline(t) }
func (c *connectedConn) SetReadDeadline(t time.Time) error  { return c.pc.SetReadDeadline(t) }
func (c *connectedConn) SetWriteDeadline(t time.Time) error { return c.pc.SetWriteDeadline(t) }
