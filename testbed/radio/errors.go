package radio

import "errors"

// Sentinel errors returned by the radio. Detail is added by wrapping.
var (
	// ErrInvalidOption reports an option value outside its documented range.
	ErrInvalidOption = errors.New("radio: invalid option")
	// ErrInvalidAddr reports an empty or malformed link address.
	ErrInvalidAddr = errors.New("radio: invalid address")
	// ErrAddrInUse reports a Listen on an address that already has an endpoint.
	ErrAddrInUse = errors.New("radio: address already in use")
	// ErrNetworkClosed reports a Listen on a network that was closed.
	ErrNetworkClosed = errors.New("radio: network closed")
)
