package coap

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Error is an error that carries the CoAP response code it maps to and a
// short diagnostic payload that may be shown to the peer. The wrapped cause
// is for the log only; it never goes on the wire.
type Error struct {
	code  codes.Code
	diag  string
	cause error
}

// Errorf returns an error answered with code and the one-line diagnostic
// diag; cause (may be nil) is kept for errors.Is/As and for the log.
func Errorf(code codes.Code, diag string, cause error) error {
	return &Error{code: code, diag: diag, cause: cause}
}

// Code is the CoAP response code.
func (e *Error) Code() codes.Code { return e.code }

// Diagnostic is the payload sent to the peer.
func (e *Error) Diagnostic() string { return e.diag }

func (e *Error) Error() string {
	if e.cause == nil {
		return fmt.Sprintf("coap %v: %s", e.code, e.diag)
	}
	return fmt.Sprintf("coap %v: %s: %v", e.code, e.diag, e.cause)
}

func (e *Error) Unwrap() error { return e.cause }

// coder is any error that knows its CoAP code.
type coder interface {
	error
	Code() codes.Code
}

// diagnoser is any error that knows what the peer may be told.
type diagnoser interface {
	Diagnostic() string
}

// CodeOf maps err to the response code and diagnostic payload the edge sends.
// Errors that do not carry a code are internal: 5.00 with a generic
// diagnostic, so that no internal detail leaks to the peer.
func CodeOf(err error) (codes.Code, string) {
	var c coder
	if errors.As(err, &c) {
		diag := c.Code().String()
		var d diagnoser
		if errors.As(err, &d) {
			diag = d.Diagnostic()
		}
		return c.Code(), diag
	}
	return codes.InternalServerError, "internal error"
}

// Sentinel errors of the transport (server, client). Detail is added by
// wrapping; test with errors.Is.
var (
	// ErrInvalidOption reports a bad server or client option or config.
	ErrInvalidOption = errors.New("coap: invalid option")
	// ErrNoDTLS reports ServeDTLS on a server built without WithDTLS.
	ErrNoDTLS = errors.New("coap: server has no DTLS configuration")
	// ErrHandshake reports a failed DTLS handshake; the pion error is
	// wrapped alongside it.
	ErrHandshake = errors.New("coap: DTLS handshake failed")
	// ErrInvalidRequest reports a Request the client cannot send.
	ErrInvalidRequest = errors.New("coap: invalid request")
	// ErrClientClosed reports use of a closed Client.
	ErrClientClosed = errors.New("coap: client closed")
	// ErrNoResponse reports a Confirmable request that got no answer
	// within MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2): every retransmission
	// went unacknowledged.
	ErrNoResponse = errors.New("coap: no response (retransmissions exhausted)")

	// errNoVerifiedChain: a DTLS peer without a (verified) certificate
	// chain where one is required.
	errNoVerifiedChain = errors.New("coap: no verified certificate chain")
)

// Dotted renders a code the way RFC 7252 writes it ("4.03").
func Dotted(c codes.Code) string { return fmt.Sprintf("%d.%02d", uint16(c)>>5, uint16(c)&0x1f) }
