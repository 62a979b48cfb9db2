package pki

import "errors"

var (
	// ErrNoSerial: an IDevID needs a serial number.
	ErrNoSerial = errors.New("no serial number")
	// ErrMASAURL: the id-pe-masa-url value is unusable.
	ErrMASAURL = errors.New("bad MASA URL")
	// ErrPEM: a PEM file holds no usable block of the expected type.
	ErrPEM = errors.New("bad PEM")
)
