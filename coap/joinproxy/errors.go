package joinproxy

import "errors"

// Sentinel errors of the package. Detail is added by wrapping; test with
// errors.Is.
var (
	// ErrInvalidOption reports a bad constructor argument or option, or an
	// option that does not apply to the thing being built.
	ErrInvalidOption = errors.New("joinproxy: invalid option")

	// ErrMalformed reports a datagram that is not a JPY message: not a
	// definite-length CBOR array of at least two elements whose first two
	// are byte strings, or trailing bytes after it.
	ErrMalformed = errors.New("joinproxy: malformed JPY message")

	// ErrTooLarge reports a JPY message, header or content beyond the
	// package's bounds (MaxHeader, MaxContent, MaxMessage).
	ErrTooLarge = errors.New("joinproxy: JPY message too large")

	// ErrBadHeader reports a JPY header that does not decrypt or verify
	// under any of the join proxy's current keys. The join proxy drops such
	// a message silently ([JP] §"JPY Message Security"); the error exists
	// for the log and for tests.
	ErrBadHeader = errors.New("joinproxy: JPY header does not verify")

	// ErrUnaddressable reports a pledge address the stateless join proxy
	// cannot carry in a JPY header (an unknown address type, or a link
	// address longer than MaxLinkAddr).
	ErrUnaddressable = errors.New("joinproxy: pledge address cannot be encoded")

	// ErrNotPeer reports a RegistrarConn write to an address that did not
	// come from its ReadFrom.
	ErrNotPeer = errors.New("joinproxy: not a JPY peer address")

	// ErrServing reports a second Serve call on a proxy, or Serve after
	// Close.
	ErrServing = errors.New("joinproxy: already serving or closed")
)
