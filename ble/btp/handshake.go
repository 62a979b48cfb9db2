package btp

import (
	"encoding/binary"
	"fmt"
)

// Handshake constants (§4.18.3).
const (
	// HandshakeFlags is the header of both handshake packets: H|M|E|B.
	// Current CHIP (BleLayer.cpp CAPABILITIES_MSG_CHECK_BYTE_1 =
	// 0b01100101), matter.js and Wireshark's dissector agree on it; the
	// 'n' ('\x6e') of older Weave-derived CHIP code is not accepted.
	HandshakeFlags = FlagHandshake | FlagManagement | FlagEnd | FlagBegin // 0x65
	// OpcodeHandshake is the management opcode of the handshake (§4.18.3.1).
	OpcodeHandshake = 0x6c
	// Version is the BTP version this package speaks, the one Matter uses.
	Version = 4
	// HandshakeRequestLen and HandshakeResponseLen are the fixed packet
	// lengths.
	HandshakeRequestLen  = 9
	HandshakeResponseLen = 6
	// MinATTMTU is the ATT_MTU every LE link supports (Bluetooth Core Vol 3
	// Part F §3.2.8).
	MinATTMTU = 23
)

// HandshakeRequest is what the central writes to C1 to open a session
// (§4.18.3.1):
//
//	request = 0x65 0x6c versions:4*u8 att-mtu:u16le window:u8
//
// Versions holds eight 4-bit version numbers in wire order: entry 2i is
// the low nibble of the i-th version octet and entry 2i+1 its high nibble
// (CHIP BleTransportCapabilitiesRequestMessage::SetSupportedProtocolVersion).
// Zero entries are unused.
type HandshakeRequest struct {
	Versions [8]uint8
	// ATTMTU is the ATT_MTU the central observed on the link, or 0 if it
	// could not tell.
	ATTMTU uint16
	// Window is the central's receive window, in packets.
	Window uint8
}

// Supports reports whether v is one of the request's versions.
func (r HandshakeRequest) Supports(v uint8) bool {
	if v == 0 {
		return false
	}
	for _, have := range r.Versions {
		if have == v {
			return true
		}
	}
	return false
}

// DecodeHandshakeRequest decodes a handshake request. A request that
// lists no version is refused with ErrVersion.
func DecodeHandshakeRequest(b []byte) (HandshakeRequest, error) {
	if err := checkHandshakeHeader(b, HandshakeRequestLen); err != nil {
		return HandshakeRequest{}, err
	}
	var r HandshakeRequest
	for i := range 4 {
		r.Versions[2*i] = b[2+i] & 0x0f
		r.Versions[2*i+1] = b[2+i] >> 4
	}
	r.ATTMTU = binary.LittleEndian.Uint16(b[6:])
	r.Window = b[8]
	if r.Versions == ([8]uint8{}) {
		return HandshakeRequest{}, fmt.Errorf("%w: request lists no version", ErrVersion)
	}
	return r, nil
}

// AppendBinary appends the encoded request to b (encoding.BinaryAppender).
func (r HandshakeRequest) AppendBinary(b []byte) ([]byte, error) {
	for i, v := range r.Versions {
		if v > 0x0f {
			return b, fmt.Errorf("%w: version %d at %d does not fit a nibble", ErrMalformed, v, i)
		}
	}
	if r.Versions == ([8]uint8{}) {
		return b, fmt.Errorf("%w: request lists no version", ErrVersion)
	}
	b = append(b, byte(HandshakeFlags), OpcodeHandshake)
	for i := range 4 {
		b = append(b, r.Versions[2*i]|r.Versions[2*i+1]<<4)
	}
	b = binary.LittleEndian.AppendUint16(b, r.ATTMTU)
	return append(b, r.Window), nil
}

// MarshalBinary encodes the request (encoding.BinaryMarshaler).
func (r HandshakeRequest) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, HandshakeRequestLen))
}

// HandshakeResponse is what the peripheral indicates on C2 once the
// central subscribed (§4.18.3.2):
//
//	response = 0x65 0x6c version:u8 segment-size:u16le window:u8
//
// The version octet's high nibble is reserved and must be zero; version 0
// means the peripheral found no common version.
type HandshakeResponse struct {
	Version uint8
	// SegmentSize is the largest BTP packet either side may send.
	SegmentSize uint16
	// Window is the receive window both sides use, in packets.
	Window uint8
}

// DecodeHandshakeResponse decodes a handshake response.
func DecodeHandshakeResponse(b []byte) (HandshakeResponse, error) {
	if err := checkHandshakeHeader(b, HandshakeResponseLen); err != nil {
		return HandshakeResponse{}, err
	}
	if b[2] > 0x0f {
		return HandshakeResponse{}, fmt.Errorf("%w: reserved bits in version octet %#02x", ErrMalformed, b[2])
	}
	return HandshakeResponse{
		Version:     b[2],
		SegmentSize: binary.LittleEndian.Uint16(b[3:]),
		Window:      b[5],
	}, nil
}

// AppendBinary appends the encoded response to b (encoding.BinaryAppender).
func (r HandshakeResponse) AppendBinary(b []byte) ([]byte, error) {
	if r.Version > 0x0f {
		return b, fmt.Errorf("%w: version %d does not fit a nibble", ErrMalformed, r.Version)
	}
	b = append(b, byte(HandshakeFlags), OpcodeHandshake, r.Version)
	b = binary.LittleEndian.AppendUint16(b, r.SegmentSize)
	return append(b, r.Window), nil
}

// MarshalBinary encodes the response (encoding.BinaryMarshaler).
func (r HandshakeResponse) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, HandshakeResponseLen))
}

func checkHandshakeHeader(b []byte, n int) error {
	switch {
	case len(b) != n:
		return fmt.Errorf("%w: %d-octet handshake packet, want %d", ErrMalformed, len(b), n)
	case Flags(b[0]) != HandshakeFlags:
		return fmt.Errorf("%w: handshake flags %#02x, want %#02x", ErrMalformed, b[0], uint8(HandshakeFlags))
	case b[1] != OpcodeHandshake:
		return fmt.Errorf("%w: management opcode %#02x, want %#02x", ErrMalformed, b[1], OpcodeHandshake)
	}
	return nil
}
