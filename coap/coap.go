// Package coap is Tumbler's CoAP edge: servers over any net.PacketConn (plain
// UDP or DTLS), a small request/response model that protocol cores use
// without knowing about sockets, a path mux with /.well-known/core link
// generation, and the one place where errors become CoAP response codes.
//
// Protocol cores (registrar, EST, check-in) implement Handler: they take a
// decoded Request and return a Response or an error. The transport adapters
// in this package translate to and from go-coap messages.
package coap

import (
	"context"
	"crypto/x509"
	"net"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Content-Format numbers used by Tumbler (IANA CoAP Content-Formats registry;
// see ../shared/spec/cbrski.md §2).
const (
	FormatNone           = -1  // no Content-Format / Accept option present
	FormatText           = 0   // text/plain; charset=utf-8
	FormatLinkFormat     = 40  // application/link-format
	FormatJSON           = 50  // application/json
	FormatCBOR           = 60  // application/cbor
	FormatCOSESign1      = 18  // application/cose; cose-type="cose-sign1"
	FormatMultipartCore  = 62  // application/multipart-core (RFC 8710)
	FormatPKCS7CertsOnly = 281 // application/pkcs7-mime; smime-type=certs-only
	FormatCSRAttrs       = 285 // application/csrattrs
	FormatPKCS10         = 286 // application/pkcs10
	FormatPKIXCert       = 287 // application/pkix-cert
	FormatVoucherCOSE    = 836 // application/voucher+cose
)

// Peer identifies the other end of a request.
type Peer struct {
	// Addr is the remote address on the link the request arrived on.
	Addr net.Addr
	// Chain is the client certificate chain the DTLS handshake verified,
	// leaf first. It is nil on plain CoAP.
	Chain []*x509.Certificate
	// Session is an opaque identifier of the transport session (one DTLS
	// association); requests on the same session carry the same value.
	Session string
}

// Secure reports whether the request arrived over an authenticated DTLS
// session with a client certificate.
func (p Peer) Secure() bool { return len(p.Chain) > 0 }

// Request is a decoded CoAP request as protocol cores see it.
type Request struct {
	Method codes.Code
	// Path is the joined Uri-Path with a leading slash, e.g. "/.well-known/brski/rv".
	Path string
	// Query holds the Uri-Query options in order.
	Query []string
	// ContentFormat and Accept are FormatNone when the option is absent.
	ContentFormat int
	Accept        int
	Payload       []byte
	// Options holds every option of the request as received, for handlers
	// (such as OSCORE) that need more than the fields above.
	Options message.Options
	Peer    Peer
}

// Response is what a handler answers. A nil *Response with a nil error is
// answered as 2.04 Changed with no payload.
type Response struct {
	Code          codes.Code
	ContentFormat int // FormatNone for no Content-Format option
	Payload       []byte
	// Options are extra options to send (ETag, Max-Age, ...). Content-Format
	// is taken from ContentFormat, not from here.
	Options message.Options
}

// Handler answers CoAP requests. Returning an error makes the edge answer
// with the code and diagnostic of the error (see CodeOf).
type Handler interface {
	ServeCoAP(ctx context.Context, r *Request) (*Response, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Request) (*Response, error)

// ServeCoAP calls f.
func (f HandlerFunc) ServeCoAP(ctx context.Context, r *Request) (*Response, error) { return f(ctx, r) }

// Changed is a 2.04 response carrying payload with the given format.
func Changed(format int, payload []byte) *Response {
	return &Response{Code: codes.Changed, ContentFormat: format, Payload: payload}
}

// Content is a 2.05 response carrying payload with the given format.
func Content(format int, payload []byte) *Response {
	return &Response{Code: codes.Content, ContentFormat: format, Payload: payload}
}
