// Package seqno allocates OSCORE Sender Sequence Numbers (RFC 8613 §3.2.2,
// §7.2) and persists them as in RFC 8613 Appendix B.1.1: before a number at
// or beyond the persisted mark is used, the number is stored, and the mark
// becomes that number plus K. After a restart, allocation resumes at
// stored + K + F and that number is stored before it is used, so that a
// second crash right after the restart cannot reuse it either.
package seqno

import "fmt"

// Max is the largest Sender Sequence Number: the number SHALL be less than
// 2^40 (RFC 8613 §7.2.1, §12.6).
const Max = 1<<40 - 1

// Persist stores n durably; it returns only once n survives a crash.
type Persist func(n uint64) error

// Counter hands out sequence numbers. It is not safe for concurrent use:
// the caller serialises Next (RFC 8613 §7.2 requires read-and-increment to
// be atomic).
type Counter struct {
	next    uint64
	mark    uint64 // numbers below mark may be used without storing
	k       uint64
	persist Persist // nil: no persistence
}

// New returns a counter starting at start without persistence.
func New(start uint64) (*Counter, error) {
	if start > Max+1 {
		return nil, ErrExhausted
	}
	return &Counter{next: start, mark: Max + 2}, nil
}

// Resume returns a persisting counter. If stored is true, allocation
// resumes at last + k + f (Appendix B.1.1: SSN2 = SSN1 + K + F); otherwise
// at start. In both cases the first number is stored before it is used.
func Resume(last uint64, stored bool, start, k, f uint64, p Persist) (*Counter, error) {
	if k == 0 || f == 0 {
		return nil, fmt.Errorf("%w: K and F must be positive (K=%d, F=%d)", ErrInvalid, k, f)
	}
	if p == nil {
		return nil, fmt.Errorf("%w: nil persist function", ErrInvalid)
	}
	next := start
	if stored {
		// Guard the additions against overflow: anything past Max is
		// exhausted anyway.
		if last > Max || k > Max || f > Max || last+k+f > Max+1 {
			next = Max + 1
		} else {
			next = last + k + f
		}
	}
	if next > Max+1 {
		next = Max + 1
	}
	return &Counter{next: next, mark: next, k: k, persist: p}, nil
}

// Next returns the next sequence number and advances. When the number
// reaches the persisted mark it is stored first; if storing fails, Next
// returns the error and does not advance, so the number is never used
// without having been stored.
func (c *Counter) Next() (uint64, error) {
	n := c.next
	if n > Max {
		return 0, ErrExhausted
	}
	if c.persist != nil && n >= c.mark {
		if err := c.persist(n); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrPersist, err)
		}
		c.mark = n + c.k
	}
	c.next = n + 1
	return n, nil
}

// Peek returns the number Next would return, without allocating it.
func (c *Counter) Peek() uint64 { return c.next }
