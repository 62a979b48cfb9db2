package oscore

import "github.com/tumbler-iot/tumbler/coap/oscore/internal/window"

// WindowState is the persistable content of a replay window (RFC 8613
// §7.4, the sliding window of RFC 6347 §4.1.2.6): bit i of Bitmap (0 = least
// significant) is set when sequence number Highest-i has been received; a
// zero Bitmap means nothing has been received. Numbers more than 63 below
// Highest count as received.
//
// A state is a set of received numbers, so Add and Merge commute: a store
// may apply the sequence numbers of concurrently committed requests in any
// order and reach the same state.
type WindowState struct {
	Highest uint64
	Bitmap  uint64
}

// Add returns s with sequence number seq marked as received.
func (s WindowState) Add(seq uint64) WindowState {
	return WindowState(window.State(s).Add(seq))
}

// Merge returns the union of s and o.
func (s WindowState) Merge(o WindowState) WindowState {
	return WindowState(window.State(s).Merge(window.State(o)))
}

// Seen reports whether s counts seq as received.
func (s WindowState) Seen(seq uint64) bool { return window.State(s).Seen(seq) }
