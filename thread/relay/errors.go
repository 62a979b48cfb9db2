package relay

import "errors"

// Sentinel errors. Detail is added by wrapping; test with errors.Is.
var (
	// ErrUnknownJoiner: a datagram addressed (WriteTo) to a joiner that
	// never sent an RLY_RX, or whose state expired. Thread's relay is
	// joiner-initiated: the commissioner can only answer.
	ErrUnknownJoiner = errors.New("relay: unknown joiner")
	// ErrTooLarge: a datagram larger than the relay carries.
	ErrTooLarge = errors.New("relay: datagram too large")
	// ErrInvalidOption: a bad option value.
	ErrInvalidOption = errors.New("relay: invalid option")
	// ErrClosed: the relay is closed.
	ErrClosed = errors.New("relay: closed")
)
