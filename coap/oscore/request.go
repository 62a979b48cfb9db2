package oscore

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap/oscore/internal/window"
)

// ProtectRequest turns a CoAP request into an OSCORE request (RFC 8613
// §8.1): Class E options, Code and payload are encrypted with the Sender
// Key under the next Sender Sequence Number as Partial IV and the Sender ID
// as 'kid'; Class U options, Type, Message ID and Token stay outside; the
// outer Code is POST, or FETCH when the request has an Observe option
// (§4.1.3.5). The Exchange verifies the response.
func (c *Context) ProtectRequest(m Message) (Message, *Exchange, error) {
	if !isRequestCode(m.Code) {
		return Message{}, nil, fmt.Errorf("%w: code %v is not a request method", ErrInvalidMessage, m.Code)
	}
	inner, outer, err := split(m.Options, true)
	if err != nil {
		return Message{}, nil, err
	}
	observe, observeReg := false, false
	if v, ok := optionValue(inner, optObserve); ok {
		observe = true
		n, ok := uintValue(v)
		observeReg = ok && n == 0
	}
	pt, err := appendPlaintext(make([]byte, 0, plaintextCap(inner, m.Payload)), m.Code, inner, m.Payload)
	if err != nil {
		return Message{}, nil, err
	}

	var pivBuf [maxPIVLen]byte
	piv, err := c.nextPIV(&pivBuf) // only after the message is known to be protectable
	if err != nil {
		return Message{}, nil, err
	}
	ex := &Exchange{
		ctx:     c,
		client:  true,
		kid:     c.senderID,
		piv:     slices.Clone(piv),
		seq:     decodePIV(piv),
		observe: observeReg,
	}
	ov := OptionValue{PartialIV: ex.piv, KID: c.senderID, HasKID: true}
	if c.sendKIDContext {
		ex.kidContext, ex.hasKIDCtx = c.idContext, true
		ov.KIDContext, ov.HasKIDContext = c.idContext, true
	}
	makeNonce(&ex.nonce, &c.commonIV, c.senderID, ex.piv)
	var aadBuf [48]byte
	aad := appendAAD(aadBuf[:0], c.alg, c.senderID, ex.piv)
	ct := c.sealer.Seal(pt[:0], ex.nonce[:], pt, aad)

	optVal, err := ov.Append(make([]byte, 0, 1+len(ex.piv)+len(c.senderID)+1+len(c.idContext)))
	if err != nil {
		return Message{}, nil, err
	}
	code := codes.POST
	if observe {
		code = codes.FETCH
	}
	return Message{
		Type:      m.Type,
		MessageID: m.MessageID,
		Token:     m.Token,
		Code:      code,
		Options:   withOSCORE(outer, optVal),
		Payload:   ct,
	}, ex, nil
}

// UnprotectRequest verifies an OSCORE request for this context and returns
// the original request (RFC 8613 §8.2): it decompresses the OSCORE option,
// checks 'kid' and 'kid context' against the Recipient ID and ID Context,
// checks the Partial IV against the replay window, decrypts, and only then
// marks the Partial IV in the window (§7.4: check and update are atomic).
// The outer Code and the outer instances of Class E options are discarded.
//
// Errors are the sentinels of errors.go; on any error the replay window is
// unchanged, except for a decrypted plaintext that is not a valid request
// (ErrMalformed after decryption), whose Partial IV is consumed as §8.2 step
// 6 requires. With Echo recovery pending (Appendix B.1.2) a verified request
// without a valid Echo value yields ErrEchoRequired and an Exchange for
// ProtectEchoChallenge.
func (c *Context) UnprotectRequest(m Message) (Message, *Exchange, error) {
	ov, err := requestOption(m)
	if err != nil {
		return Message{}, nil, err
	}
	if !bytes.Equal(ov.KID, c.recipientID) {
		return Message{}, nil, fmt.Errorf("%w: kid %x", ErrContextNotFound, ov.KID)
	}
	if ov.HasKIDContext && (!c.hasIDContext || !bytes.Equal(ov.KIDContext, c.idContext)) {
		return Message{}, nil, fmt.Errorf("%w: kid context %x", ErrContextNotFound, ov.KIDContext)
	}
	seq := decodePIV(ov.PartialIV)

	c.recvMu.Lock()
	fresh := c.needsEcho || c.window.Check(seq)
	c.recvMu.Unlock()
	if !fresh {
		return Message{}, nil, fmt.Errorf("%w: sequence number %d", ErrReplay, seq)
	}

	ex := &Exchange{
		ctx:        c,
		kid:        slices.Clone(ov.KID),
		kidContext: slices.Clone(ov.KIDContext),
		hasKIDCtx:  ov.HasKIDContext,
		piv:        slices.Clone(ov.PartialIV),
		seq:        seq,
	}
	makeNonce(&ex.nonce, &c.commonIV, c.recipientID, ex.piv)
	var aadBuf [48]byte
	aad := appendAAD(aadBuf[:0], c.alg, ex.kid, ex.piv)
	pt, err := c.opener.Open(nil, ex.nonce[:], m.Payload, aad)
	if err != nil {
		return Message{}, nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	code, inner, payload, perr := parsePlaintext(pt)
	if perr == nil && !isRequestCode(code) {
		perr = fmt.Errorf("%w: decrypted code %v is not a request", ErrMalformed, code)
	}
	if perr == nil && hasOption(inner, OptionNumber) {
		perr = fmt.Errorf("%w: inner OSCORE option", ErrMalformed)
	}

	c.recvMu.Lock()
	if c.needsEcho {
		echoed := false
		if perr == nil {
			if v, ok := optionValue(inner, optEcho); ok && c.echo.consume(v) {
				// Appendix B.1.2: the Partial IV of the request that returned
				// the Echo value is the lower limit of the replay window.
				c.window.Set(window.LowerLimit(seq))
				c.needsEcho = false
				echoed = true
				inner = slices.DeleteFunc(inner, func(o message.Option) bool { return o.ID == optEcho })
			}
		}
		if !echoed {
			if perr != nil {
				c.recvMu.Unlock()
				return Message{}, nil, perr
			}
			v, err := c.echo.issue()
			c.recvMu.Unlock()
			if err != nil {
				return Message{}, nil, err
			}
			ex.echo = v
			return Message{}, ex, ErrEchoRequired
		}
	} else {
		if !c.window.Check(seq) { // a concurrent copy won the race
			c.recvMu.Unlock()
			return Message{}, nil, fmt.Errorf("%w: sequence number %d", ErrReplay, seq)
		}
		c.window.Accept(seq)
	}
	c.recvMu.Unlock()
	if perr != nil {
		return Message{}, nil, perr
	}

	if v, ok := optionValue(inner, optObserve); ok {
		n, ok := uintValue(v)
		ex.observe = ok && n == 0
	}
	return Message{
		Type:      m.Type,
		MessageID: m.MessageID,
		Token:     m.Token,
		Code:      code,
		Options:   merge(m.Options, inner),
		Payload:   payload,
	}, ex, nil
}

// requestOption extracts and checks the compressed COSE header of a request
// (§5, §6.1, §8.2 steps 1-2): OSCORE option present once, 'kid' and Partial
// IV present, 'kid' not longer than any Recipient ID can be, a payload of at
// least the tag plus the Code byte.
func requestOption(m Message) (OptionValue, error) {
	val, found, err := findOSCORE(m.Options)
	if err != nil {
		return OptionValue{}, err
	}
	if !found {
		return OptionValue{}, ErrNotProtected
	}
	if !isRequestCode(m.Code) {
		return OptionValue{}, fmt.Errorf("%w: code %v is not a request method", ErrMalformed, m.Code)
	}
	ov, err := DecodeOptionValue(val)
	if err != nil {
		return OptionValue{}, err
	}
	if !ov.HasKID || ov.PartialIV == nil {
		return OptionValue{}, fmt.Errorf("%w: request without kid or Partial IV", ErrBadOption)
	}
	if len(ov.KID) > maxIDLen {
		return OptionValue{}, fmt.Errorf("%w: %w", ErrContextNotFound, ErrIDTooLong)
	}
	if err := checkCiphertext(m.Payload); err != nil {
		return OptionValue{}, err
	}
	return ov, nil
}

// checkCiphertext rejects payloads that cannot be an OSCORE ciphertext: a
// message with the OSCORE option and no payload is malformed (§2), and the
// ciphertext holds at least the Code byte and the tag (§5.3).
func checkCiphertext(p []byte) error {
	switch {
	case len(p) == 0:
		return fmt.Errorf("%w: no payload", ErrMalformed)
	case len(p) < tagLen+1:
		return fmt.Errorf("%w: payload of %d bytes is shorter than the tag and Code", ErrMalformed, len(p))
	case len(p) > maxPayload:
		return fmt.Errorf("%w: payload of %d bytes exceeds the AEAD limit", ErrMalformed, len(p))
	}
	return nil
}

// withOSCORE appends the OSCORE option to sorted outer options.
func withOSCORE(outer message.Options, value []byte) message.Options {
	if value == nil {
		value = []byte{}
	}
	outer = append(outer, message.Option{ID: OptionNumber, Value: value})
	slices.SortStableFunc(outer, cmpOption)
	return outer
}

// plaintextCap sizes the plaintext buffer so that sealing in place does not
// reallocate: Code, options with generous headers, marker, payload, tag.
func plaintextCap(opts message.Options, payload []byte) int {
	n := 1 + 1 + len(payload) + tagLen
	for _, o := range opts {
		n += 5 + len(o.Value)
	}
	return n
}
