// Package btp is a Bluetooth Transport Protocol engine: the connection-
// oriented, message-preserving transport Matter runs over two GATT
// characteristics (Matter Core Specification 1.3 §4.18; Matter 1.4
// renumbers it §4.19), which Tumbler uses to carry DTLS datagrams between
// BLE pledges and the registrar (../../shared/spec/thread-ble.md §4.1,
// §4.5). It knows nothing of radios: it takes a Link (write C1 or indicate
// C2, up to ATT_MTU-3 octets, subscribe) and gives a Conn that sends and
// receives whole messages.
//
// Wire types (this package's public surface besides Conn):
//
//	handshake request  = 0x65 0x6c versions:4*u8 att-mtu:u16le window:u8     (§4.18.3.1)
//	handshake response = 0x65 0x6c version:u8 segment-size:u16le window:u8   (§4.18.3.2)
//	segment            = flags:u8 [ack:u8] seq:u8 [length:u16le] payload     (§4.18.2)
//
// Flags are B 0x01 (begin), C 0x02 (continue), E 0x04 (end), A 0x08 (ack
// present), M 0x20 (management), H 0x40 (handshake). Decoders are strict
// (reserved bits, contradictory flags and disagreeing lengths are
// refused) so every accepted packet re-encodes to the same octets.
//
// Session rules, as CHIP (src/ble/BtpEngine.cpp, BLEEndPoint.cpp) and
// matter.js (BtpSessionHandler.ts) implement them:
//
//   - The central writes the request on C1, subscribes to C2; the
//     peripheral indicates the response, which is its packet 0. Version 4
//     only. The segment size is ATT_MTU-3 (at most 512); the window is the
//     smaller of both sides', at least MinWindow; a central clamps what the
//     peripheral selects to what it offered.
//   - Every packet has an 8-bit sequence number and must be the next one;
//     every packet, stand-alone acknowledgements included, is acknowledged.
//     At most window packets are unacknowledged each way; a packet without
//     an acknowledgement may not take the peer's last free slot.
//   - A message is one B segment (with its length) then C segments, the
//     last C|E; B|E if it fits one segment. Middle segments carry C.
//   - Acknowledgements ride on data; a stand-alone one goes when the local
//     window is down to one slot or after the send-ack delay (2.5 s).
//     Packets unacknowledged for BTP_ACK_TIMEOUT (15 s), or no message data
//     for BTP_CONN_IDLE_TIMEOUT (30 s), end the session. An idle session
//     therefore exchanges a stand-alone acknowledgement per send-ack delay:
//     BTP's keep-alive.
//
// Any protocol violation ends the session with a sentinel error (see
// errors.go). Memory per session is bounded by the queues and one
// reassembly buffer of at most the maximum message size, which an
// announced length above the limit never allocates.
//
// Section numbers are those of the Matter 1.3 core specification as
// Wireshark's BTP dissector cites them; the specification itself is
// available from the CSA.
package btp
