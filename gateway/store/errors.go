package store

import "errors"

var (
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store closed")
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrConfig: invalid Open option.
	ErrConfig = errors.New("invalid store configuration")
	// ErrInternal: a bug (a panic inside an update function).
	ErrInternal = errors.New("internal store error")
	// ErrConflict: the change contradicts the stored state (e.g. a second
	// device with the same serial number from a different IDevID).
	ErrConflict = errors.New("conflicting state")
	// ErrReadOnly: the store was opened read-only.
	ErrReadOnly = errors.New("store opened read-only")
	// ErrSchema: the database was written by a newer Tumbler.
	ErrSchema = errors.New("unsupported schema version")
)
