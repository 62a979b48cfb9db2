package btp

import (
	"encoding/binary"
	"fmt"
)

// Flags is the header flags octet that starts every BTP packet
// (Matter Core Specification 1.3 §4.18.2.1).
type Flags uint8

// Header flags (§4.18.2.1; CHIP src/ble/BtpEngine.h, matter.js BtpCodec.ts).
const (
	// FlagBegin (B) marks the first segment of a message; it carries the
	// message length.
	FlagBegin Flags = 0x01
	// FlagContinue (C) marks every segment of a message but the first.
	FlagContinue Flags = 0x02
	// FlagEnd (E) marks the last segment of a message.
	FlagEnd Flags = 0x04
	// FlagAck (A) says the packet carries an acknowledgement number.
	FlagAck Flags = 0x08
	// FlagManagement (M) says a management opcode follows the flags.
	FlagManagement Flags = 0x20
	// FlagHandshake (H) marks a handshake request or response.
	FlagHandshake Flags = 0x40

	// flagsReserved are bits the specification does not assign (0x10 was a
	// test-only "command" bit in CHIP). They must be zero.
	flagsReserved Flags = 0x90
	// flagsData are the segmentation flags.
	flagsData = FlagBegin | FlagContinue | FlagEnd
)

// Segment sizes. A segment is one GATT value, at most ATT_MTU-3 octets.
const (
	// MinSegmentSize is the segment size of the minimum ATT_MTU, 23, less
	// the 3-octet ATT header (Bluetooth Core Vol 3 Part F §3.2.8).
	MinSegmentSize = 20
	// MaxSegmentSize is the longest attribute value ATT allows (Bluetooth
	// Core Vol 3 Part F §3.2.9).
	MaxSegmentSize = 512
	// maxHeaderLen is flags, ack, sequence and message length.
	maxHeaderLen = 5
)

// Segment is one BTP packet after the handshake: a segment of a message
// (an SDU), a stand-alone acknowledgement, or both (§4.18.2):
//
//	segment = flags:u8 [ack:u8 if A] seq:u8 [length:u16le if B] payload
//
// A data segment sets B, C or E: B alone on the first of several, C on the
// middle ones, C|E on the last, B|E on a message that fits one segment.
// A stand-alone acknowledgement sets only A and carries no payload.
type Segment struct {
	Flags Flags
	// Ack is the sequence number acknowledged; present if Flags has FlagAck.
	Ack uint8
	// Seq is the packet's sequence number (§4.18.4.6).
	Seq uint8
	// Length is the length of the whole message; present if Flags has
	// FlagBegin.
	Length uint16
	// Payload is this segment's part of the message. After DecodeSegment it
	// aliases the decoded buffer.
	Payload []byte
}

// HeaderLen is the number of octets before the payload.
func (s Segment) HeaderLen() int {
	n := 2
	if s.Flags&FlagAck != 0 {
		n++
	}
	if s.Flags&FlagBegin != 0 {
		n += 2
	}
	return n
}

// IsData reports whether s carries part of a message.
func (s Segment) IsData() bool { return s.Flags&flagsData != 0 }

// check enforces the per-segment rules of §4.18.2 that do not depend on
// reassembly state. Decoding and encoding apply the same rules, so a
// decoded segment re-encodes to the same octets.
func (s Segment) check() error {
	f := s.Flags
	switch {
	case f&flagsReserved != 0:
		return fmt.Errorf("%w: reserved flags %#02x", ErrMalformed, uint8(f&flagsReserved))
	case f&(FlagHandshake|FlagManagement) != 0:
		return fmt.Errorf("%w: management packet %#02x after the handshake", ErrMalformed, uint8(f))
	case f&FlagBegin != 0 && f&FlagContinue != 0:
		return fmt.Errorf("%w: both beginning and continuing flags", ErrMalformed)
	}
	if !s.IsData() {
		if f&FlagAck == 0 {
			return fmt.Errorf("%w: neither data nor acknowledgement", ErrMalformed)
		}
		if len(s.Payload) != 0 {
			return fmt.Errorf("%w: payload on a stand-alone acknowledgement", ErrMalformed)
		}
		return nil
	}
	if f&FlagBegin == 0 {
		// A continuation must carry data (matter.js BtpSessionHandler).
		if len(s.Payload) == 0 {
			return fmt.Errorf("%w: empty continuing segment", ErrMalformed)
		}
		return nil
	}
	// A zero-length message is a B|E segment without payload; CHIP's and
	// matter.js's receivers accept one, so this side does too.
	switch {
	case f&FlagEnd != 0 && len(s.Payload) != int(s.Length):
		return fmt.Errorf("%w: single segment carries %d octets of a %d-octet message", ErrMalformed, len(s.Payload), s.Length)
	case f&FlagEnd == 0 && len(s.Payload) >= int(s.Length):
		return fmt.Errorf("%w: first segment carries all %d octets but no end flag", ErrMalformed, s.Length)
	}
	return nil
}

// DecodeSegment decodes a BTP packet received after the handshake. The
// returned Payload aliases b.
func DecodeSegment(b []byte) (Segment, error) {
	if len(b) < 2 {
		return Segment{}, fmt.Errorf("%w: %d-octet packet", ErrMalformed, len(b))
	}
	s := Segment{Flags: Flags(b[0])}
	i := 1
	if s.Flags&FlagAck != 0 {
		s.Ack = b[i]
		i++
	}
	if i >= len(b) {
		return Segment{}, fmt.Errorf("%w: no sequence number", ErrMalformed)
	}
	s.Seq = b[i]
	i++
	if s.Flags&FlagBegin != 0 {
		if len(b) < i+2 {
			return Segment{}, fmt.Errorf("%w: no message length", ErrMalformed)
		}
		s.Length = binary.LittleEndian.Uint16(b[i:])
		i += 2
	}
	s.Payload = b[i:len(b):len(b)]
	if err := s.check(); err != nil {
		return Segment{}, err
	}
	return s, nil
}

// AppendBinary appends the encoded segment to b (encoding.BinaryAppender).
// It refuses segments DecodeSegment would refuse.
func (s Segment) AppendBinary(b []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return b, err
	}
	if len(s.Payload) > 0xffff {
		return b, fmt.Errorf("%w: %d-octet payload", ErrMalformed, len(s.Payload))
	}
	return s.append(b), nil
}

// MarshalBinary encodes the segment (encoding.BinaryMarshaler).
func (s Segment) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, s.HeaderLen()+len(s.Payload)))
}

func (s Segment) append(b []byte) []byte {
	b = append(b, byte(s.Flags))
	if s.Flags&FlagAck != 0 {
		b = append(b, s.Ack)
	}
	b = append(b, s.Seq)
	if s.Flags&FlagBegin != 0 {
		b = binary.LittleEndian.AppendUint16(b, s.Length)
	}
	return append(b, s.Payload...)
}
