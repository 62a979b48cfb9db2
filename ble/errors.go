package ble

import "errors"

// Sentinel errors. Detail is added by wrapping with %w; test with
// errors.Is. Errors of the BTP engine are ble/btp's.
var (
	// ErrInvalidOption reports an option value outside its documented range.
	ErrInvalidOption = errors.New("ble: invalid option")
	// ErrNoRoute reports a datagram written to an address that is not the
	// peer of a PeripheralConn.
	ErrNoRoute = errors.New("ble: no such peer")
	// ErrLinkLimit reports a link refused because the Central already
	// holds its maximum number of sessions.
	ErrLinkLimit = errors.New("ble: too many links")
)
