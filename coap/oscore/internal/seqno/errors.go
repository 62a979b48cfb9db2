package seqno

import "errors"

var (
	// ErrExhausted reports that every sequence number below 2^40 is used.
	ErrExhausted = errors.New("seqno: sender sequence number exhausted")
	// ErrPersist reports that the sequence number could not be stored.
	ErrPersist = errors.New("seqno: storing the sequence number failed")
	// ErrInvalid reports invalid persistence parameters.
	ErrInvalid = errors.New("seqno: invalid parameters")
)
