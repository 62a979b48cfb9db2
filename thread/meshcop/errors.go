package meshcop

import "errors"

// Sentinel errors of the codec. Detail (type, offset, length) is added by
// wrapping; test with errors.Is.
var (
	// ErrTruncated: the payload ends inside a TLV header or value.
	ErrTruncated = errors.New("meshcop: truncated TLV")
	// ErrLength: a TLV value has a length its type does not allow (too
	// short or over-long), or is longer than 65535 bytes.
	ErrLength = errors.New("meshcop: bad TLV length")
	// ErrDuplicate: a known TLV type appears twice in one message.
	ErrDuplicate = errors.New("meshcop: duplicate TLV")
	// ErrTooMany: a message has more than MaxTLVs TLVs.
	ErrTooMany = errors.New("meshcop: too many TLVs")
	// ErrMissing: a TLV the message requires is absent.
	ErrMissing = errors.New("meshcop: required TLV missing")
	// ErrValue: a TLV is well-formed but its value is not allowed (a State
	// other than -1, 0, 1; an empty steering data).
	ErrValue = errors.New("meshcop: bad TLV value")
	// ErrPSKcInput: PSKc inputs out of range (passphrase length, network
	// name length).
	ErrPSKcInput = errors.New("meshcop: bad PSKc input")
)
