package btp

import "errors"

// Sentinel errors. Detail is added by wrapping with %w; test with errors.Is.
// Every error that ends a Conn (all but ErrQueueFull, ErrInvalidOption and
// the Send argument errors) is also what Conn.Err returns.
var (
	// ErrInvalidOption reports an option value outside its documented range.
	ErrInvalidOption = errors.New("btp: invalid option")

	// ErrMalformed reports a segment or handshake packet that does not
	// decode: too short, reserved or contradictory flags, wrong check
	// octets, or lengths that disagree (§4.18.2, §4.18.3).
	ErrMalformed = errors.New("btp: malformed packet")
	// ErrVersion reports that the peers share no BTP version (§4.18.3.1):
	// the central offered none the peripheral supports, or the peripheral
	// selected one the central did not offer.
	ErrVersion = errors.New("btp: no common protocol version")
	// ErrHandshake reports handshake parameters outside what this
	// implementation accepts: a window below MinWindow or a segment size
	// below MinSegmentSize.
	ErrHandshake = errors.New("btp: unacceptable handshake parameters")
	// ErrHandshakeTimeout reports a handshake that did not complete within
	// the handshake timeout (BTP_CONN_RSP_TIMEOUT, §4.18.3).
	ErrHandshakeTimeout = errors.New("btp: handshake timed out")

	// ErrSegmentTooLarge reports a segment longer than the negotiated
	// segment size.
	ErrSegmentTooLarge = errors.New("btp: segment exceeds the negotiated size")
	// ErrSequence reports a segment whose sequence number is not the next
	// one expected: a duplicate, a gap or a reordering (§4.18.4.6). GATT
	// delivers in order, so this is a broken or hostile peer.
	ErrSequence = errors.New("btp: unexpected sequence number")
	// ErrAck reports an acknowledgement of a sequence number that is not in
	// flight.
	ErrAck = errors.New("btp: invalid acknowledgement")
	// ErrWindow reports a peer that sent more unacknowledged segments than
	// the negotiated receive window allows.
	ErrWindow = errors.New("btp: receive window exceeded")
	// ErrReassembly reports segments that do not form a message: a
	// beginning inside a message, a continuation without a beginning, or
	// payload that disagrees with the announced message length.
	ErrReassembly = errors.New("btp: inconsistent segmentation")
	// ErrMessageTooLarge reports a message above the configured maximum,
	// sent or announced by the peer. Announced lengths are refused before
	// any buffer is allocated.
	ErrMessageTooLarge = errors.New("btp: message too large")
	// ErrEmptyMessage reports an attempt to send a zero-length message;
	// BTP cannot carry one.
	ErrEmptyMessage = errors.New("btp: empty message")

	// ErrAckTimeout reports segments left unacknowledged for the ack
	// timeout (BTP_ACK_TIMEOUT): the peer is gone or stuck.
	ErrAckTimeout = errors.New("btp: acknowledgement timed out")
	// ErrIdleTimeout reports a session that carried no message data for the
	// idle timeout (BTP_CONN_IDLE_TIMEOUT).
	ErrIdleTimeout = errors.New("btp: session idle")

	// ErrQueueFull reports that a non-blocking send found the send queue
	// full. The Conn is still usable.
	ErrQueueFull = errors.New("btp: send queue full")
	// ErrClosed reports use of a Conn after Close.
	ErrClosed = errors.New("btp: connection closed")
	// ErrLinkClosed is what a Link returns once the GATT connection is gone
	// (disconnected, unsubscribed or closed). Link implementations wrap it.
	ErrLinkClosed = errors.New("btp: GATT link closed")
)
