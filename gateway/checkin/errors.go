package checkin

import "errors"

var (
	// ErrNotEnrolled: provisioning needs a DTLS session authenticated with
	// an LDevID this domain issued to an enrolled device.
	ErrNotEnrolled = errors.New("device not enrolled here")
	// ErrInactive: the device may not check in (reset, decommissioned or
	// otherwise not active).
	ErrInactive = errors.New("device not active")
	// ErrPayload: the check-in payload is not a check-in map.
	ErrPayload = errors.New("malformed check-in")
	// ErrContentFormat: the payload is not CF 60.
	ErrContentFormat = errors.New("check-in must be application/cbor")
	// ErrConfig: invalid check-in configuration.
	ErrConfig = errors.New("invalid check-in configuration")
	// errStale: an overdue deadline moved while its record was prepared.
	errStale = errors.New("overdue deadline moved")
)
