package meshcop

import (
	"encoding/binary"
	"fmt"
)

// MaxTLVs bounds the TLVs in one message. The largest MeshCoP message
// OpenThread builds, an Active Operational Dataset, has 13; a commissioner
// dataset has 8.
const MaxTLVs = 64

// escape is the length byte announcing a 16-bit length (OpenThread
// Tlv::kExtendedLength, ot-commissioner tlv::kEscapeLength).
const escape = 0xff

// TLV is one MeshCoP TLV: a 1-byte type, a 1-byte length (or 0xFF and a
// 2-byte big-endian length), and the value.
//
//	tlv      = type:u8 length:u8 value           ; length < 255
//	ext-tlv  = type:u8 0xFF length:u16be value  ; extended
//
// Thread 1.4 §8.10 (MeshCoP TLVs); OpenThread src/core/common/tlvs.hpp
// (Tlv, ExtendedTlv).
type TLV struct {
	Type  Type
	Value []byte
	// Extended records that the TLV was (or is to be) written with the
	// extended length. Encoding uses it also when the value is 255 bytes or
	// longer, and for types that OpenThread always extends (Type.Extended).
	Extended bool
}

// NewTLV returns a TLV of type t with value v, extended if OpenThread
// writes type t extended.
func NewTLV(t Type, v []byte) TLV { return TLV{Type: t, Value: v, Extended: t.Extended()} }

// Uint16TLV returns a TLV holding v big-endian.
func Uint16TLV(t Type, v uint16) TLV {
	return NewTLV(t, binary.BigEndian.AppendUint16(nil, v))
}

// extended reports whether tlv is written with the extended length.
func (tlv TLV) extended() bool { return tlv.Extended || len(tlv.Value) >= escape }

// size is the encoded size of tlv.
func (tlv TLV) size() int {
	if tlv.extended() {
		return 4 + len(tlv.Value)
	}
	return 2 + len(tlv.Value)
}

// TLVs is an ordered list of TLVs: the payload of a MeshCoP message.
// Decoding and encoding preserve order, unknown types and the length form
// of each TLV, so that Decode followed by Encode reproduces the input.
type TLVs []TLV

// Decode parses b strictly: every TLV must be complete, a known type must
// have a value length its type allows and must not repeat, and there must
// be at most MaxTLVs. Values alias b.
func Decode(b []byte) (TLVs, error) {
	var out TLVs
	seen := make(map[Type]bool)
	for off := 0; off < len(b); {
		if len(out) == MaxTLVs {
			return nil, fmt.Errorf("%w: more than %d", ErrTooMany, MaxTLVs)
		}
		if len(b)-off < 2 {
			return nil, fmt.Errorf("%w: header at offset %d", ErrTruncated, off)
		}
		t, n := Type(b[off]), int(b[off+1])
		start, ext := off+2, false
		if n == escape {
			if len(b)-off < 4 {
				return nil, fmt.Errorf("%w: extended header of %v at offset %d", ErrTruncated, t, off)
			}
			n, start, ext = int(binary.BigEndian.Uint16(b[off+2:])), off+4, true
		}
		if len(b)-start < n {
			return nil, fmt.Errorf("%w: %v at offset %d needs %d bytes, %d left", ErrTruncated, t, off, n, len(b)-start)
		}
		if err := checkLength(t, n); err != nil {
			return nil, fmt.Errorf("%w (offset %d)", err, off)
		}
		if t.Known() {
			if seen[t] {
				return nil, fmt.Errorf("%w: %v at offset %d", ErrDuplicate, t, off)
			}
			seen[t] = true
		}
		out = append(out, TLV{Type: t, Value: b[start : start+n : start+n], Extended: ext})
		off = start + n
	}
	return out, nil
}

// Validate applies Decode's rules to ts.
func (ts TLVs) Validate() error {
	if len(ts) > MaxTLVs {
		return fmt.Errorf("%w: %d", ErrTooMany, len(ts))
	}
	seen := make(map[Type]bool)
	for _, tlv := range ts {
		if err := checkLength(tlv.Type, len(tlv.Value)); err != nil {
			return err
		}
		if tlv.Type.Known() {
			if seen[tlv.Type] {
				return fmt.Errorf("%w: %v", ErrDuplicate, tlv.Type)
			}
			seen[tlv.Type] = true
		}
	}
	return nil
}

// Encode returns the wire form of ts after checking it with Validate.
func (ts TLVs) Encode() ([]byte, error) { return ts.Append(nil) }

// Append appends the wire form of ts to dst after checking it with
// Validate.
func (ts TLVs) Append(dst []byte) ([]byte, error) {
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	n := 0
	for _, tlv := range ts {
		n += tlv.size()
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	for _, tlv := range ts {
		if tlv.extended() {
			dst = append(dst, byte(tlv.Type), escape)
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(tlv.Value)))
		} else {
			dst = append(dst, byte(tlv.Type), byte(len(tlv.Value)))
		}
		dst = append(dst, tlv.Value...)
	}
	return dst, nil
}

// Find returns the first TLV of type t.
func (ts TLVs) Find(t Type) (TLV, bool) {
	for _, tlv := range ts {
		if tlv.Type == t {
			return tlv, true
		}
	}
	return TLV{}, false
}

// Set replaces the value of the TLV of type t, keeping its position, or
// appends a new one.
func (ts *TLVs) Set(tlv TLV) {
	for i := range *ts {
		if (*ts)[i].Type == tlv.Type {
			(*ts)[i] = tlv
			return
		}
	}
	*ts = append(*ts, tlv)
}

// Uint16 returns the big-endian value of the TLV of type t, which must be
// 2 bytes long.
func (ts TLVs) Uint16(t Type) (uint16, error) {
	tlv, ok := ts.Find(t)
	if !ok {
		return 0, fmt.Errorf("%w: %v", ErrMissing, t)
	}
	if len(tlv.Value) != 2 {
		return 0, fmt.Errorf("%w: %v is %d bytes, want 2", ErrLength, t, len(tlv.Value))
	}
	return binary.BigEndian.Uint16(tlv.Value), nil
}

// Bytes returns the value of the TLV of type t.
func (ts TLVs) Bytes(t Type) ([]byte, error) {
	tlv, ok := ts.Find(t)
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrMissing, t)
	}
	return tlv.Value, nil
}

// without returns the TLVs of ts whose type is not in drop, in order.
func (ts TLVs) without(drop ...Type) TLVs {
	var out TLVs
next:
	for _, tlv := range ts {
		for _, d := range drop {
			if tlv.Type == d {
				continue next
			}
		}
		out = append(out, tlv)
	}
	return out
}
