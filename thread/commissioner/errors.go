package commissioner

import "errors"

// Sentinel errors. Detail is added by wrapping; test with errors.Is.
var (
	// ErrInvalidConfig: a bad Config field or option.
	ErrInvalidConfig = errors.New("commissioner: invalid configuration")
	// ErrNotConnected: no session with the Border Agent to send on.
	ErrNotConnected = errors.New("commissioner: not connected to the Border Agent")
	// ErrRejected: the leader answered State Reject (petition, keep-alive,
	// MGMT_COMMISSIONER_SET).
	ErrRejected = errors.New("commissioner: rejected")
	// ErrResponse: the Border Agent answered with an error code or a
	// malformed payload.
	ErrResponse = errors.New("commissioner: bad response")
	// ErrRunning: Run called twice.
	ErrRunning = errors.New("commissioner: already running")
)
