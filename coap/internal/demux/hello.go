package demux

import "encoding/binary"

// DTLS record and handshake constants (RFC 6347 §4.1, §4.2.2; RFC 9147 §4).
const (
	recordHeaderLen        = 13 // type(1) version(2) epoch(2) sequence(6) length(2)
	handshakeHeaderLen     = 12 // msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3)
	contentTypeHandshake   = 22
	handshakeClientHello   = 1
	dtlsVersionMajor       = 0xfe // DTLS versions are 0xfeff (1.0), 0xfefd (1.2), 0xfefc (1.3)
	recordEpochOffset      = 3
	recordLengthOffset     = 11
	minClientHelloDatagram = recordHeaderLen + handshakeHeaderLen
)

// IsClientHello reports whether datagram starts with a plaintext DTLS record
// carrying a ClientHello: content type 22 (handshake), a DTLS version,
// epoch 0, a record length that fits the datagram, and handshake type 1.
// It is the Accept filter for DTLS: nothing else from an unknown address
// may create state.
func IsClientHello(datagram []byte) bool {
	if len(datagram) < minClientHelloDatagram {
		return false
	}
	if datagram[0] != contentTypeHandshake || datagram[1] != dtlsVersionMajor {
		return false
	}
	if binary.BigEndian.Uint16(datagram[recordEpochOffset:]) != 0 {
		return false
	}
	recordLen := int(binary.BigEndian.Uint16(datagram[recordLengthOffset:]))
	if recordLen < handshakeHeaderLen || recordHeaderLen+recordLen > len(datagram) {
		return false
	}
	return datagram[recordHeaderLen] == handshakeClientHello
}
