package cose

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (detail is added with %w); test with errors.Is.
var (
	// ErrTooLarge: the input exceeds MaxMessageSize. It is reported before
	// any byte is decoded.
	ErrTooLarge = errors.New("cose: message too large")

	// ErrMalformed: the input is not well-formed CBOR, breaks a strict
	// decoding rule (duplicate map key, indefinite length, nesting or size
	// limit, trailing bytes, non-preferred serialization of the envelope) or
	// is not a COSE_Sign1 structure.
	ErrMalformed = errors.New("cose: malformed message")

	// ErrBadSignature: the signature does not verify under the given key.
	ErrBadSignature = errors.New("cose: signature verification failed")

	// ErrAlgorithm: the algorithm is unsupported, missing from the
	// protected bucket, present in the unprotected bucket, or differs from
	// the algorithm implied by the key.
	ErrAlgorithm = errors.New("cose: unsupported or mismatched algorithm")

	// ErrUnsupportedHeader: the protected header marks as critical (label 2)
	// a header parameter this package does not understand.
	ErrUnsupportedHeader = errors.New("cose: unsupported critical header parameter")

	// ErrNoX5Bag: the message carries no x5bag (label 32) in either bucket.
	ErrNoX5Bag = errors.New("cose: no x5bag header")

	// ErrCertificate: an x5bag entry is not a DER X.509 certificate.
	ErrCertificate = errors.New("cose: bad certificate in x5bag")

	// ErrKey: a key is nil or of a type this package cannot use.
	ErrKey = errors.New("cose: unsupported key")

	// ErrOptions: SignOptions are contradictory or hold empty values.
	ErrOptions = errors.New("cose: invalid sign options")
)
