// Package window is the OSCORE server's anti-replay sliding window
// (RFC 8613 §3.2.2 and §7.4), the algorithm of RFC 6347 §4.1.2.6 and
// RFC 4303 §3.4.3, over sequence numbers of at most 40 bits.
//
// The state is a pair (highest, bitmap): bit i of bitmap (0 = least
// significant) is set when sequence number highest-i has been received.
// A zero bitmap means that nothing has been received yet. Sequence numbers
// more than Width-1 below highest are treated as received. The pair is a
// set, so adding numbers commutes: Add(Add(s, a), b) == Add(Add(s, b), a).
package window

// Width is the number of sequence numbers a state can describe.
const Width = 64

// MaxSize is the largest window size a Window accepts.
const MaxSize = Width

// State is the exportable content of a window: see the package comment.
type State struct {
	Highest uint64
	Bitmap  uint64
}

// Seen reports whether seq counts as received in s (with width Width).
func (s State) Seen(seq uint64) bool {
	if s.Bitmap == 0 {
		return false
	}
	if seq > s.Highest {
		return false
	}
	d := s.Highest - seq
	if d >= Width {
		return true
	}
	return s.Bitmap&(1<<d) != 0
}

// Add returns s with seq marked as received.
func (s State) Add(seq uint64) State {
	if s.Bitmap == 0 {
		return State{Highest: seq, Bitmap: 1}
	}
	if seq > s.Highest {
		d := seq - s.Highest
		if d >= Width {
			return State{Highest: seq, Bitmap: 1}
		}
		return State{Highest: seq, Bitmap: s.Bitmap<<d | 1}
	}
	d := s.Highest - seq
	if d >= Width {
		return s
	}
	return State{Highest: s.Highest, Bitmap: s.Bitmap | 1<<d}
}

// Merge returns the union of s and o.
func (s State) Merge(o State) State {
	if o.Bitmap == 0 {
		return s
	}
	if s.Bitmap == 0 {
		return o
	}
	if o.Highest > s.Highest {
		s, o = o, s
	}
	d := s.Highest - o.Highest
	if d >= Width {
		return s
	}
	// Positions that o shifts out at the top stand for numbers below the
	// window of s; they count as received anyway.
	return State{Highest: s.Highest, Bitmap: s.Bitmap | o.Bitmap<<d}
}

// LowerLimit returns the state in which seq and every number below it count
// as received: the window initialised from a fresh request (RFC 8613
// Appendix B.1.2).
func LowerLimit(seq uint64) State {
	return State{Highest: seq, Bitmap: ^uint64(0)}
}

// Window is a replay window of a given size (1..MaxSize). The zero value
// is not usable; call New. A Window is not safe for concurrent use.
type Window struct {
	size  uint64
	state State
}

// New returns an empty window of the given size. It reports false if size
// is out of range.
func New(size int) (Window, bool) {
	if size < 1 || size > MaxSize {
		return Window{}, false
	}
	return Window{size: uint64(size)}, true
}

// Restore returns a window of the given size holding s.
func Restore(size int, s State) (Window, bool) {
	w, ok := New(size)
	if !ok {
		return Window{}, false
	}
	w.state = s
	return w, true
}

// Check reports whether seq may be accepted: it is newer than the highest
// number received, or inside the window and not yet received.
func (w *Window) Check(seq uint64) bool {
	if w.state.Bitmap == 0 || seq > w.state.Highest {
		return true
	}
	d := w.state.Highest - seq
	if d >= w.size {
		return false
	}
	return w.state.Bitmap&(1<<d) == 0
}

// Accept marks seq as received. It must follow a successful Check.
func (w *Window) Accept(seq uint64) { w.state = w.state.Add(seq) }

// Set replaces the window content.
func (w *Window) Set(s State) { w.state = s }

// State returns the window content. Positions beyond the window size are
// reported as received, which is what this window does with them.
func (w *Window) State() State {
	s := w.state
	if s.Bitmap != 0 && w.size < Width {
		s.Bitmap |= ^uint64(0) << w.size
	}
	return s
}
