package oscore

import (
	"errors"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Error is an OSCORE verification failure that RFC 8613 answers with an
// unprotected CoAP error response (§7.4, §8.2). Code and Diagnostic give that
// response; Error gives the text for the log. The sentinels below are the
// only values; wrap them with %w to add detail and test with errors.Is.
type Error struct {
	code codes.Code
	diag string
	msg  string
}

// Error returns the log text.
func (e *Error) Error() string { return e.msg }

// Code is the response code of the unprotected error response.
func (e *Error) Code() codes.Code { return e.code }

// Diagnostic is the diagnostic payload RFC 8613 suggests for the response.
func (e *Error) Diagnostic() string { return e.diag }

// Verification failures with their unprotected error responses.
var (
	// ErrBadOption: the OSCORE option value does not decompress (reserved
	// flag bits set, Partial IV length 6 or 7, truncated 'kid context', a
	// non-minimal Partial IV, or a request without 'kid' or Partial IV);
	// §6.1, §8.2 step 2: 4.02 (Bad Option) "Failed to decode COSE".
	ErrBadOption = &Error{codes.BadOption, "Failed to decode COSE", "oscore: malformed OSCORE option"}
	// ErrMalformed: the COSE object does not decode: no payload, a
	// ciphertext shorter than the tag plus the Code byte, the OSCORE option
	// repeated, or a decrypted plaintext that is not a CoAP message of the
	// expected kind; §2, §5.3, §8.2 step 2: 4.02 (Bad Option).
	ErrMalformed = &Error{codes.BadOption, "Failed to decode COSE", "oscore: malformed OSCORE message"}
	// ErrContextNotFound: no Recipient Context for the 'kid' (and 'kid
	// context'); §8.2 step 2: 4.01 (Unauthorized) "Security context not found".
	ErrContextNotFound = &Error{codes.Unauthorized, "Security context not found", "oscore: security context not found"}
	// ErrReplay: the Partial IV was received before or is below the replay
	// window (§7.4): 4.01 (Unauthorized) "Replay detected". A client also
	// returns it for a second response to a single request.
	ErrReplay = &Error{codes.Unauthorized, "Replay detected", "oscore: replay detected"}
	// ErrDecrypt: AEAD decryption or integrity verification failed;
	// §8.2 step 6: 4.00 (Bad Request) "Decryption failed".
	ErrDecrypt = &Error{codes.BadRequest, "Decryption failed", "oscore: decryption failed"}
	// ErrNotProtected: a message that must be OSCORE-protected has no OSCORE
	// option. The server answers 4.01 (Unauthorized) "OSCORE required"
	// (a Tumbler choice; RFC 8613 defines no response for this case).
	ErrNotProtected = &Error{codes.Unauthorized, "OSCORE required", "oscore: message has no OSCORE option"}
)

// Errors that are not answered with an unprotected response.
var (
	// ErrEchoRequired: the Recipient Context has no trustworthy replay
	// window and the request carried no valid Echo value; the server answers
	// with the OSCORE-protected 4.01 + Echo of Appendix B.1.2
	// (Context.ProtectEchoChallenge).
	ErrEchoRequired = errors.New("oscore: replay window not established, Echo challenge required")
	// ErrSequenceExhausted: the Sender Sequence Number reached 2^40 (§7.2.1);
	// the context must be replaced.
	ErrSequenceExhausted = errors.New("oscore: sender sequence number exhausted")
	// ErrSequenceStore: the Sender Sequence Number could not be persisted
	// (Appendix B.1.1), so it was not used.
	ErrSequenceStore = errors.New("oscore: persisting the sender sequence number failed")
	// ErrInvalidParams: security context parameters violate §3.
	ErrInvalidParams = errors.New("oscore: invalid security context parameters")
	// ErrUnsupportedAlgorithm: an AEAD or HKDF algorithm other than
	// AES-CCM-16-64-128 (10) and HKDF SHA-256 (§3.1 defaults).
	ErrUnsupportedAlgorithm = errors.New("oscore: unsupported algorithm")
	// ErrIDTooLong: a Sender ID, Recipient ID or 'kid' longer than the AEAD
	// nonce length minus 6 (7 bytes for AES-CCM-16-64-128; §3.3, §5.2).
	ErrIDTooLong = errors.New("oscore: identifier longer than 7 bytes")
	// ErrNested: the message to protect already has an OSCORE option;
	// nested OSCORE is not supported (§4.1.3.7).
	ErrNested = errors.New("oscore: message already has an OSCORE option")
	// ErrInvalidMessage: the message given to Protect* cannot be protected
	// (wrong code class, conflicting or oversized options, bad Proxy-Uri).
	ErrInvalidMessage = errors.New("oscore: message cannot be protected")
	// ErrExchange: the Exchange does not belong to this context or is of the
	// wrong kind.
	ErrExchange = errors.New("oscore: exchange does not match")
)

// ServerError is an unprotected error response received for a protected
// request (§7.4, §8.2). Its content is not authenticated: an on-path
// attacker can forge it.
type ServerError struct {
	code codes.Code
	diag string
}

// Code is the response code.
func (e *ServerError) Code() codes.Code { return e.code }

// Diagnostic is the diagnostic payload of the response, if any.
func (e *ServerError) Diagnostic() string { return e.diag }

func (e *ServerError) Error() string {
	if e.diag == "" {
		return "oscore: unprotected " + e.code.String() + " response"
	}
	return "oscore: unprotected " + e.code.String() + " response: " + e.diag
}

// Unwrap returns ErrNotProtected.
func (e *ServerError) Unwrap() error { return ErrNotProtected }
