package joinproxy

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// Bounds of JPY messages. Decode and Encode refuse anything larger with
// ErrTooLarge, so a flood of maximal datagrams costs at most MaxMessage
// bytes of buffer per reader.
const (
	// MaxHeader bounds jpy_header. The draft asks a join proxy to keep its
	// state data to 32 bytes ([JP] §"JPY Message Structure"); a registrar
	// must treat the header as opaque, so it accepts up to four times that
	// from other implementations. Tumbler's own headers are 28 bytes for a
	// link-local IPv6 pledge (see header.go).
	MaxHeader = 128
	// MaxContent bounds jpy_content: the UDP payload relayed for a pledge.
	// cBRSKI keeps DTLS records within a 1280-byte link ([JP] §"JPY Message
	// Overhead and MTU Size"); 2048 is also the largest record Tumbler's
	// DTLS server reads.
	MaxContent = 2048
	// MaxMessage bounds a whole JPY datagram, including elements after the
	// first two, which are parsed (they must be well-formed CBOR) and
	// ignored.
	MaxMessage = 4096
)

// CBOR major types (RFC 8949 §3.1) checked on the first two elements.
const (
	majorByteString = 2
	majorArray      = 4
)

// Message is a JPY message, the per-datagram encapsulation between a
// stateless join proxy and a registrar:
//
//	jpy_message =
//	[
//	   jpy_header  : bstr,
//	   jpy_content : bstr,
//	]
//
// Header is the join proxy's state for the datagram (opaque to the
// registrar, which echoes it unchanged); Content is the pledge's UDP
// payload, a DTLS record for cBRSKI. A receiver accepts arrays of two or
// more elements and uses the first two. Decode copies: the fields never
// alias its input.
//
// draft-ietf-anima-constrained-join-proxy §"JPY Message Structure",
// §"Processing by Registrar".
type Message struct {
	Header  []byte
	Content []byte
}

// Decode parses one JPY message from b with Tumbler's strict CBOR mode
// (definite lengths only, bounded nesting, no trailing bytes). It returns
// an error wrapping ErrTooLarge if b, the header or the content exceeds its
// bound, and ErrMalformed for anything else that is not a JPY message:
// a non-array, fewer than two elements, a first or second element that is
// not an untagged byte string, malformed CBOR anywhere in the array.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessage {
		return Message{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessage)
	}
	if len(b) == 0 || b[0]>>5 != majorArray {
		return Message{}, fmt.Errorf("%w: not a CBOR array", ErrMalformed)
	}
	var elems []cbor.RawMessage
	if err := cose.Unmarshal(b, &elems); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(elems) < 2 {
		return Message{}, fmt.Errorf("%w: %d elements, want at least 2", ErrMalformed, len(elems))
	}
	var m Message
	for i, dst := range []*[]byte{&m.Header, &m.Content} {
		raw := elems[i]
		if len(raw) == 0 || raw[0]>>5 != majorByteString {
			return Message{}, fmt.Errorf("%w: element %d is not a byte string", ErrMalformed, i)
		}
		if err := cose.Unmarshal(raw, dst); err != nil {
			return Message{}, fmt.Errorf("%w: element %d: %w", ErrMalformed, i, err)
		}
	}
	if err := m.check(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Encode returns the deterministic (RFC 8949 §4.2.1) encoding of m: a
// two-element array of byte strings with shortest-form lengths. Decode of
// the result yields m again; for a message received with exactly two
// elements in preferred serialization, the result is the received bytes.
func (m Message) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	// A nil slice would encode as CBOR null.
	h, c := m.Header, m.Content
	if h == nil {
		h = []byte{}
	}
	if c == nil {
		c = []byte{}
	}
	b, err := cose.Marshal([2][]byte{h, c})
	if err != nil {
		return nil, fmt.Errorf("joinproxy: encode JPY: %w", err)
	}
	return b, nil
}

func (m Message) check() error {
	if len(m.Header) > MaxHeader {
		return fmt.Errorf("%w: header %d bytes, limit %d", ErrTooLarge, len(m.Header), MaxHeader)
	}
	if len(m.Content) > MaxContent {
		return fmt.Errorf("%w: content %d bytes, limit %d", ErrTooLarge, len(m.Content), MaxContent)
	}
	return nil
}
