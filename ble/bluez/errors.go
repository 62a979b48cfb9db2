//go:build bluez && linux

package bluez

import "errors"

// ErrInvalidOption reports an option value outside its range.
var ErrInvalidOption = errors.New("bluez: invalid option")

// Causes of a link's end, wrapped with btp.ErrLinkClosed.
var (
	errDisconnected = errors.New("device disconnected")
	errOverflow     = errors.New("indications beyond the BTP window")
	errClosed       = errors.New("closed by the gateway")
)
