package oscore

import (
	"fmt"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// ProtectResponse turns a CoAP response to the request of ex into an OSCORE
// response (RFC 8613 §8.3). The AAD binds it to the request's 'kid' and
// Partial IV (§7.1). Without withPIV the request's AEAD nonce is reused and
// the OSCORE option is empty (Appendix C.7); with it the next Sender
// Sequence Number is the Partial IV (Appendix C.8). A Partial IV is used
// regardless of withPIV where one is required: every response after the
// first to the same request (a nonce serves one plaintext only;
// notifications, §4.1.3.5.2) and the Echo challenge of Appendix B.1.2.
//
// The outer Code is 2.04 (Changed); for an Observe notification it is 2.05
// (Content) with the Observe value outside, an empty inner Observe
// (§4.1.3.5.2) and an outer Max-Age of 0 (§4.1.3.1) so that proxies do not
// cache it.
func (c *Context) ProtectResponse(m Message, ex *Exchange, withPIV bool) (Message, error) {
	if ex == nil || ex.ctx != c || ex.client {
		return Message{}, fmt.Errorf("%w: not a server exchange of this context", ErrExchange)
	}
	if !isResponseCode(m.Code) {
		return Message{}, fmt.Errorf("%w: code %v is not a response code", ErrInvalidMessage, m.Code)
	}
	inner, outer, err := split(m.Options, false)
	if err != nil {
		return Message{}, err
	}
	notification := hasOption(inner, optObserve)
	if notification {
		if !ex.observe {
			return Message{}, fmt.Errorf("%w: Observe in a response to a request that did not register", ErrInvalidMessage)
		}
		for i := range inner {
			if inner[i].ID == optObserve {
				inner[i].Value = nil // §4.1.3.5.2: the Inner Observe of a notification is empty
			}
		}
		if !hasOption(outer, optMaxAge) {
			outer = append(outer, message.Option{ID: optMaxAge, Value: []byte{}})
			slices.SortStableFunc(outer, cmpOption)
		}
	}
	pt, err := appendPlaintext(make([]byte, 0, plaintextCap(inner, m.Payload)), m.Code, inner, m.Payload)
	if err != nil {
		return Message{}, err
	}

	ex.mu.Lock()
	first := ex.responses == 0
	ex.responses++
	ex.mu.Unlock()

	var (
		pivBuf [maxPIVLen]byte
		piv    []byte
		nonce  [nonceLen]byte
	)
	if withPIV || !first || ex.echo != nil {
		if piv, err = c.nextPIV(&pivBuf); err != nil {
			return Message{}, err
		}
		makeNonce(&nonce, &c.commonIV, c.senderID, piv)
	} else {
		nonce = ex.nonce
	}
	var aadBuf [48]byte
	aad := appendAAD(aadBuf[:0], c.alg, ex.kid, ex.piv)
	ct := c.sealer.Seal(pt[:0], nonce[:], pt, aad)
	optVal, err := OptionValue{PartialIV: piv}.Append(make([]byte, 0, 1+len(piv)))
	if err != nil {
		return Message{}, err
	}
	code := codes.Changed
	if notification {
		code = codes.Content
	}
	return Message{
		Type:      m.Type,
		MessageID: m.MessageID,
		Token:     m.Token,
		Code:      code,
		Options:   withOSCORE(outer, optVal),
		Payload:   ct,
	}, nil
}

// ProtectEchoChallenge answers a request refused with ErrEchoRequired
// (Appendix B.1.2): an OSCORE-protected 4.01 (Unauthorized) carrying only
// the Echo option and no diagnostic payload, under the server's own Partial
// IV. Type, MessageID and Token are taken from hdr.
func (c *Context) ProtectEchoChallenge(hdr Message, ex *Exchange) (Message, error) {
	if ex == nil || ex.echo == nil {
		return Message{}, fmt.Errorf("%w: no pending Echo challenge", ErrExchange)
	}
	m := Message{
		Type:      hdr.Type,
		MessageID: hdr.MessageID,
		Token:     hdr.Token,
		Code:      codes.Unauthorized,
		Options:   message.Options{{ID: optEcho, Value: ex.echo}},
	}
	return c.ProtectResponse(m, ex, true)
}

// UnprotectResponse verifies an OSCORE response to the request of ex and
// returns the original response (RFC 8613 §8.4). Without a Partial IV the
// request's nonce is used, with one the nonce is built from the Recipient
// ID. A response without the OSCORE option yields a *ServerError (wrapping
// ErrNotProtected) holding its unauthenticated code and diagnostic.
//
// Only one response that is not a notification is accepted per request,
// further ones fail with ErrReplay (§7.4). Notifications (§4.1.3.5.2,
// §7.4.1) are accepted in increasing Partial IV order only, at most one
// without Partial IV; the returned Observe value is the three least
// significant bytes of the Partial IV. A response carrying 'kid' or 'kid
// context' is refused with ErrBadOption (Group OSCORE and Appendix B.2 are
// not implemented). On error the exchange is unchanged.
func (c *Context) UnprotectResponse(m Message, ex *Exchange) (Message, error) {
	if ex == nil || ex.ctx != c || !ex.client {
		return Message{}, fmt.Errorf("%w: not a client exchange of this context", ErrExchange)
	}
	val, found, err := findOSCORE(m.Options)
	if err != nil {
		return Message{}, err
	}
	if !found {
		return Message{}, &ServerError{code: m.Code, diag: string(m.Payload)}
	}
	if !isResponseCode(m.Code) {
		return Message{}, fmt.Errorf("%w: code %v is not a response code", ErrMalformed, m.Code)
	}
	ov, err := DecodeOptionValue(val)
	if err != nil {
		return Message{}, err
	}
	if ov.HasKID || ov.HasKIDContext {
		// Only Group OSCORE and Appendix B.2 put these in responses; neither
		// is implemented, and the AAD would not cover them (§5.4).
		return Message{}, fmt.Errorf("%w: kid or kid context in a response", ErrBadOption)
	}
	if err := checkCiphertext(m.Payload); err != nil {
		return Message{}, err
	}
	var nonce [nonceLen]byte
	if ov.PartialIV != nil {
		makeNonce(&nonce, &c.commonIV, c.recipientID, ov.PartialIV)
	} else {
		nonce = ex.nonce
	}
	var aadBuf [48]byte
	aad := appendAAD(aadBuf[:0], c.alg, ex.kid, ex.piv)
	pt, err := c.opener.Open(nil, nonce[:], m.Payload, aad)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	code, inner, payload, err := parsePlaintext(pt)
	if err != nil {
		return Message{}, err
	}
	if !isResponseCode(code) {
		return Message{}, fmt.Errorf("%w: decrypted code %v is not a response", ErrMalformed, code)
	}
	notification := hasOption(inner, optObserve)
	if notification && !ex.observe {
		// §4.1.3.5.2: a response to a non-Observe request with an Inner
		// Observe option is not processed.
		return Message{}, fmt.Errorf("%w: Observe in a response to a non-Observe request", ErrMalformed)
	}

	ex.mu.Lock()
	switch {
	case notification && ov.PartialIV == nil:
		if ex.noPIVAccepted {
			ex.mu.Unlock()
			return Message{}, fmt.Errorf("%w: second notification without Partial IV", ErrReplay)
		}
		ex.noPIVAccepted = true
	case notification:
		seq := decodePIV(ov.PartialIV)
		if ex.haveNotification && seq <= ex.notification {
			ex.mu.Unlock()
			return Message{}, fmt.Errorf("%w: notification %d not newer than %d", ErrReplay, seq, ex.notification)
		}
		ex.notification, ex.haveNotification = seq, true
		for i := range inner {
			if inner[i].ID == optObserve {
				inner[i].Value = appendUint(nil, uint32(seq&0xffffff))
			}
		}
	default:
		if ex.responses > 0 {
			ex.mu.Unlock()
			return Message{}, fmt.Errorf("%w: request already answered", ErrReplay)
		}
		ex.responses++
	}
	ex.mu.Unlock()

	return Message{
		Type:      m.Type,
		MessageID: m.MessageID,
		Token:     m.Token,
		Code:      code,
		Options:   merge(m.Options, inner),
		Payload:   payload,
	}, nil
}
