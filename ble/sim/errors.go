package sim

import "errors"

// Sentinel errors; detail by wrapping.
var (
	// ErrInvalidOption reports an option value outside its range.
	ErrInvalidOption = errors.New("sim: invalid option")
	// ErrClosed reports use of a closed Network.
	ErrClosed = errors.New("sim: network closed")
	// ErrValueTooLong reports a value longer than ATT_MTU-3, which ATT
	// refuses (Invalid Attribute Value Length).
	ErrValueTooLong = errors.New("sim: value longer than ATT_MTU-3")
	// ErrNotSubscribed reports an indication before the central enabled
	// indications on C2.
	ErrNotSubscribed = errors.New("sim: indication without subscription")
	// ErrDropped is the cause of a simulated connection loss. Links report
	// it wrapped with btp.ErrLinkClosed.
	ErrDropped = errors.New("sim: connection lost")
)

// Causes of a link's end when one side closes it.
var (
	errCentralClosed    = errors.New("central disconnected")
	errPeripheralClosed = errors.New("peripheral disconnected")
)
