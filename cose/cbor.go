package cose

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Limits of the shared strict decoding mode.
const (
	// MaxMessageSize bounds every CBOR input handed to Unmarshal or Parse,
	// checked before a single byte is decoded. 64 KiB is forty times the
	// largest cBRSKI artifact in the draft (the 1604-byte RVR; with the
	// pledge chain added by -30 an RVR stays under 4 KiB), larger than any
	// block-wise reassembled CoAP body Tumbler accepts, and small enough
	// that a flood of maximal requests cannot exhaust memory.
	MaxMessageSize = 64 << 10

	// MaxNestedLevels bounds the nesting of arrays, maps and tags. A
	// COSE_Sign1 carrying a voucher needs 4 levels; Tumbler's records 5.
	MaxNestedLevels = 16

	// MaxArrayElements bounds the declared length of any CBOR array.
	MaxArrayElements = 1024

	// MaxMapPairs bounds the declared number of pairs of any CBOR map.
	MaxMapPairs = 256
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	// Core Deterministic Encoding, RFC 8949 §4.2.1: preferred (shortest)
	// serialization, definite lengths, map keys sorted bytewise
	// lexicographically by their encoding, shortest floats.
	eo := cbor.CoreDetEncOptions()
	eo.IndefLength = cbor.IndefLengthForbidden
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic("cose: bad CBOR encoding options: " + err.Error())
	}

	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   MaxNestedLevels,
		MaxArrayElements:  MaxArrayElements,
		MaxMapPairs:       MaxMapPairs,
		IntDec:            cbor.IntDecConvertSignedOrFail,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic("cose: bad CBOR decoding options: " + err.Error())
	}
}

// EncMode returns the shared deterministic encoding mode (RFC 8949 §4.2.1
// Core Deterministic Encoding, indefinite lengths forbidden). It is safe for
// concurrent use.
func EncMode() cbor.EncMode { return encMode }

// DecMode returns the shared strict decoding mode: duplicate map keys,
// indefinite lengths, invalid UTF-8 and unknown struct fields are errors;
// nesting is bounded by MaxNestedLevels, arrays by MaxArrayElements and maps
// by MaxMapPairs; integers decoded into interface values become int64.
// It does not bound the input size: use Unmarshal, which does. It is safe
// for concurrent use.
func DecMode() cbor.DecMode { return decMode }

// Marshal encodes v with the deterministic encoding mode.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cose: encode: %w", err)
	}
	return b, nil
}

// Unmarshal decodes exactly one CBOR data item from data into v with the
// strict decoding mode. Inputs larger than MaxMessageSize fail with
// ErrTooLarge before decoding; any decoding failure wraps ErrMalformed.
func Unmarshal(data []byte, v any) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	if err := decMode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}
