package record

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (detail is added with %w); test with errors.Is. Signature failures wrap
// cose.ErrBadSignature, and a key of the wrong type cose's sentinels as
// well as ErrKey.
var (
	// ErrMalformed: the input is not a COSE_Sign1 message, or its payload
	// is not well-formed CBOR within the decoding limits (duplicate map
	// key, indefinite length, invalid UTF-8, nesting or size limit,
	// trailing bytes), or is not a map.
	ErrMalformed = errors.New("record: malformed record")

	// ErrEncoding: the payload is well-formed but not in Core
	// Deterministic Encoding (RFC 8949 §4.2.1), so it is not the one
	// encoding of the record.
	ErrEncoding = errors.New("record: payload not deterministically encoded")

	// ErrHeader: the protected header is not exactly {1: -7, 4: kid} with
	// an 8-byte kid, or the unprotected header is not empty.
	ErrHeader = errors.New("record: bad COSE header")

	// ErrSignatureEncoding: the signature is not 64 bytes r || s with
	// s <= n/2 (low-S), the only form records accept.
	ErrSignatureEncoding = errors.New("record: signature not in low-S form")

	// ErrMissingKey: the record map lacks one of the keys 1..8.
	ErrMissingKey = errors.New("record: missing key")

	// ErrUnknownKey: the record map has a key other than the integers
	// 1..8.
	ErrUnknownKey = errors.New("record: unknown key")

	// ErrVersion: the version (key 1) is not the unsigned integer 1.
	ErrVersion = errors.New("record: unsupported version")

	// ErrType: the type (key 2) is not one of the defined record types,
	// or a typed body was decoded from a record of another type.
	ErrType = errors.New("record: unknown or mismatched type")

	// ErrField: a field of the record has the wrong CBOR type, size or
	// range: a device id or prev that is not 32 bytes, a negative, float
	// or out-of-range time or sequence number, an empty serial number, a
	// body that is not a map with integer keys.
	ErrField = errors.New("record: bad field")

	// ErrBody: the body does not match the definition for the record's
	// type (missing, extra or ill-typed key), or a check-in request is not
	// a valid device check-in payload.
	ErrBody = errors.New("record: bad body")

	// ErrKey: a key is not an ECDSA P-256 key, or a PEM input holds no
	// usable public key.
	ErrKey = errors.New("record: unsupported key")

	// ErrKeyID: the record's kid is not the key id of the given public
	// key, or (in a chain) not the kid of the chain's first record.
	ErrKeyID = errors.New("record: kid mismatch")

	// ErrSeqOrder: a record's gateway sequence number is not greater than
	// the previous record's.
	ErrSeqOrder = errors.New("record: sequence number not increasing")

	// ErrFirstHasPrev: the first record of a device in a chain names a
	// previous record.
	ErrFirstHasPrev = errors.New("record: first record of device has prev")

	// ErrChainBreak: a later record of a device does not name the
	// previous record of that device (wrong or null prev).
	ErrChainBreak = errors.New("record: device chain broken")

	// ErrSerialChanged: records with the same device id carry different
	// serial numbers.
	ErrSerialChanged = errors.New("record: serial number changed within device chain")

	// ErrNoRecords: VerifyFiles was given no files.
	ErrNoRecords = errors.New("record: no records to verify")
)

// ChainError reports the first record of a sequence that breaks a chain
// rule. It wraps ErrKeyID, ErrSeqOrder, ErrFirstHasPrev, ErrChainBreak,
// ErrSerialChanged or, for a nil record, ErrMalformed.
type ChainError struct {
	// Index is the record's position in the sequence, from 0.
	Index int
	// Seq is the record's gateway sequence number (0 for a nil record).
	Seq uint64
	// Err is the reason.
	Err error
}

// Error implements error.
func (e *ChainError) Error() string {
	return "record " + strconv.Itoa(e.Index) + " (seq " + strconv.FormatUint(e.Seq, 10) + "): " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *ChainError) Unwrap() error { return e.Err }

// FileError names the file a VerifyFiles failure is about. Err is the
// reading, parsing or verification error, or a *ChainError.
type FileError struct {
	File string
	Err  error
}

// Error implements error.
func (e *FileError) Error() string { return fmt.Sprintf("%s: %v", e.File, e.Err) }

// Unwrap returns the reason.
func (e *FileError) Unwrap() error { return e.Err }
