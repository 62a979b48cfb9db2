package oscore

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Message is a whole CoAP message: header fields (Type, MessageID, Token;
// Class U, §4.2), Code, options and payload. It is go-coap's message type,
// so the UDP codec (udp/coder) encodes and decodes it directly. Options
// must not be shared with another goroutine while a Protect or Unprotect
// call runs; results may alias the buffers of their input.
type Message = message.Message

// Exchange binds a response to its request (§7.1, §8): it holds the
// request's 'kid', Partial IV and AEAD nonce, which the response's AAD and
// (without its own Partial IV) nonce reuse. A client gets one from
// ProtectRequest, a server from UnprotectRequest. It is safe for concurrent
// use.
type Exchange struct {
	ctx        *Context
	client     bool
	kid        []byte
	kidContext []byte
	hasKIDCtx  bool
	piv        []byte
	seq        uint64
	nonce      [nonceLen]byte
	observe    bool   // the request registered an observation (inner Observe 0)
	echo       []byte // server: Echo value of a pending Appendix B.1.2 challenge

	mu        sync.Mutex
	responses int // responses protected (server) or accepted (client)
	// client, Observe: the Notification Number of §4.1.3.5.2 and §7.4.1.
	notification     uint64
	haveNotification bool
	noPIVAccepted    bool

	durable atomic.Bool
}

// Context returns the security context of the exchange.
func (ex *Exchange) Context() *Context { return ex.ctx }

// KID returns the request's 'kid', the client's Sender ID.
func (ex *Exchange) KID() []byte { return bytes.Clone(ex.kid) }

// KIDContext returns the request's 'kid context' and whether it had one.
func (ex *Exchange) KIDContext() ([]byte, bool) { return bytes.Clone(ex.kidContext), ex.hasKIDCtx }

// PartialIV returns the request's Partial IV.
func (ex *Exchange) PartialIV() []byte { return bytes.Clone(ex.piv) }

// Seq returns the request's sequence number (the Partial IV as a number):
// what a store adds to its persisted WindowState.
func (ex *Exchange) Seq() uint64 { return ex.seq }

// Observe reports whether the request registered an observation.
func (ex *Exchange) Observe() bool { return ex.observe }

// EchoChallenge reports whether the request was refused for want of an Echo
// value (ErrEchoRequired); answer it with Context.ProtectEchoChallenge.
func (ex *Exchange) EchoChallenge() bool { return ex.echo != nil }

// MarkDurable records that the request's sequence number has been stored
// in the persisted replay window, typically in the same transaction as the
// request's effects. The Handler then skips its commit hook.
func (ex *Exchange) MarkDurable() { ex.durable.Store(true) }

// Durable reports whether MarkDurable was called.
func (ex *Exchange) Durable() bool { return ex.durable.Load() }

type exchangeKey struct{}

// ExchangeFrom returns the Exchange of the OSCORE request that ctx belongs
// to (RFC 8613 §7.1: 'kid' and Partial IV of the request): the Handler puts
// it there for the inner handler.
func ExchangeFrom(ctx context.Context) (*Exchange, bool) {
	ex, ok := ctx.Value(exchangeKey{}).(*Exchange)
	return ex, ok && ex != nil
}

// WithExchange returns a copy of ctx carrying ex (the request binding of
// RFC 8613 §7.1), for servers that verify requests without the Handler.
func WithExchange(ctx context.Context, ex *Exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}
