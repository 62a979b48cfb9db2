package oscore

import (
	"bytes"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
)

// OptionNumber is the CoAP option number of the OSCORE option (RFC 8613
// §2, §13.2).
const OptionNumber message.OptionID = 9

const (
	flagKID        = 0x08 // k
	flagKIDContext = 0x10 // h
	flagReserved   = 0xe0 // bits 5..7 of the first byte
	pivLenMask     = 0x07 // n
)

// OptionValue is the compressed COSE object header carried in the OSCORE
// option (RFC 8613 §6.1):
//
//	 0 1 2 3 4 5 6 7 <--------- n bytes --------->
//	+-+-+-+-+-+-+-+-+------------------------------
//	|0 0 0|h|k|  n  |    Partial IV (if any) ...
//	+-+-+-+-+-+-+-+-+------------------------------
//	 <- 1 byte -> <-- s bytes -->
//	+------------+---------------+------------------+
//	| s (if any) | kid context   | kid (if any) ... |
//	+------------+---------------+------------------+
//
// A value with every flag zero is the empty byte string. Decoding is strict
// so that DecodeOptionValue and Encode are inverse: reserved bits, n = 6 or
// 7, a Partial IV with a leading zero byte, bytes left over without k, and a
// single 0x00 byte are rejected.
type OptionValue struct {
	// PartialIV is the Partial IV (§5), at most 5 bytes, nil when absent.
	PartialIV []byte
	// KIDContext is the 'kid context' (§5.1), present when HasKIDContext.
	KIDContext    []byte
	HasKIDContext bool
	// KID is the 'kid' (§5), present when HasKID; it may be empty.
	KID    []byte
	HasKID bool
}

// DecodeOptionValue parses an OSCORE option value (§6.1). Errors wrap
// ErrBadOption. The returned slices alias b.
func DecodeOptionValue(b []byte) (OptionValue, error) {
	var v OptionValue
	if len(b) == 0 {
		return v, nil
	}
	flags := b[0]
	if flags&flagReserved != 0 {
		return v, fmt.Errorf("%w: reserved flag bits 0x%02x set", ErrBadOption, flags&flagReserved)
	}
	if flags == 0 {
		return v, fmt.Errorf("%w: all flags zero in a non-empty value", ErrBadOption)
	}
	n := int(flags & pivLenMask)
	if n > maxPIVLen {
		return v, fmt.Errorf("%w: reserved Partial IV length %d", ErrBadOption, n)
	}
	rest := b[1:]
	if n > 0 {
		if len(rest) < n {
			return v, fmt.Errorf("%w: Partial IV truncated", ErrBadOption)
		}
		if n > 1 && rest[0] == 0 {
			return v, fmt.Errorf("%w: Partial IV has a leading zero byte", ErrBadOption)
		}
		v.PartialIV = rest[:n:n]
		rest = rest[n:]
	}
	if flags&flagKIDContext != 0 {
		if len(rest) < 1 {
			return v, fmt.Errorf("%w: kid context length missing", ErrBadOption)
		}
		s := int(rest[0])
		rest = rest[1:]
		if len(rest) < s {
			return v, fmt.Errorf("%w: kid context truncated", ErrBadOption)
		}
		v.KIDContext = rest[:s:s]
		v.HasKIDContext = true
		rest = rest[s:]
	}
	if flags&flagKID != 0 {
		v.KID = rest[:len(rest):len(rest)]
		v.HasKID = true
		return v, nil
	}
	if len(rest) != 0 {
		return v, fmt.Errorf("%w: %d trailing bytes without kid flag", ErrBadOption, len(rest))
	}
	return v, nil
}

// Encode returns the option value (§6.1). It fails with ErrInvalidMessage
// for a Partial IV that is longer than 5 bytes or not minimally encoded,
// and for a 'kid context' longer than 255 bytes.
func (v OptionValue) Encode() ([]byte, error) {
	return v.Append(nil)
}

// Append appends the option value to b; see Encode.
func (v OptionValue) Append(b []byte) ([]byte, error) {
	n := len(v.PartialIV)
	if n > maxPIVLen {
		return nil, fmt.Errorf("%w: Partial IV longer than %d bytes", ErrInvalidMessage, maxPIVLen)
	}
	if n > 1 && v.PartialIV[0] == 0 {
		return nil, fmt.Errorf("%w: Partial IV has a leading zero byte", ErrInvalidMessage)
	}
	if v.HasKIDContext && len(v.KIDContext) > 255 {
		return nil, fmt.Errorf("%w: kid context longer than 255 bytes", ErrInvalidMessage)
	}
	flags := byte(n)
	if v.HasKID {
		flags |= flagKID
	}
	if v.HasKIDContext {
		flags |= flagKIDContext
	}
	if flags == 0 {
		return b, nil
	}
	b = append(b, flags)
	b = append(b, v.PartialIV...)
	if v.HasKIDContext {
		b = append(b, byte(len(v.KIDContext)))
		b = append(b, v.KIDContext...)
	}
	if v.HasKID {
		b = append(b, v.KID...)
	}
	return b, nil
}

// Equal reports whether v and o encode to the same option value.
func (v OptionValue) Equal(o OptionValue) bool {
	return bytes.Equal(v.PartialIV, o.PartialIV) &&
		v.HasKIDContext == o.HasKIDContext && bytes.Equal(v.KIDContext, o.KIDContext) &&
		v.HasKID == o.HasKID && bytes.Equal(v.KID, o.KID)
}
