package ownership

import "errors"

// Errors of Service methods; the API maps each to one HTTP status.
var (
	// ErrNotFound (404): no such device, delegation or sink.
	ErrNotFound = errors.New("not found")
	// ErrInvalid (400): a request field is malformed; the message names it.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict (409): the device's state does not allow the operation.
	ErrConflict = errors.New("not allowed in the device's state")
	// ErrRefused (403): the MASA or policy refused (authorisation not
	// valid, proof missing, objection, ...); the message says why.
	ErrRefused = errors.New("refused")
	// ErrUnavailable (502/503): the MASA could not be reached.
	ErrUnavailable = errors.New("MASA unavailable")
	// ErrUnauthorized (401): an unknown or expired token.
	ErrUnauthorized = errors.New("unauthorized")
)
