package oscore

import (
	"crypto/subtle"
	"fmt"
	"io"
	"time"
)

const (
	echoLen      = 8 // RFC 9175 §2.2: 1..40 bytes; 8 random bytes are unguessable within the lifetime
	maxEchoes    = 4 // outstanding challenges per context
	echoOptionID = 252
)

// echoState holds the Echo values a context handed out (Appendix B.1.2).
// Values are random, bound to the context by living in it, single-use and
// short-lived. It is guarded by Context.recvMu.
type echoState struct {
	lifetime time.Duration
	now      func() time.Time
	rand     io.Reader
	pending  *[maxEchoes]echoValue // allocated by the first challenge
}

type echoValue struct {
	value   [echoLen]byte
	expires time.Time
	used    bool
}

// issue returns a fresh Echo value, replacing an expired, used or the oldest
// outstanding one.
func (e *echoState) issue() ([]byte, error) {
	if e.pending == nil {
		e.pending = new([maxEchoes]echoValue)
	}
	now := e.now()
	slot := 0
	for i := range e.pending {
		p := &e.pending[i]
		if p.used || !now.Before(p.expires) {
			slot = i
			break
		}
		if p.expires.Before(e.pending[slot].expires) {
			slot = i
		}
	}
	var v echoValue
	if _, err := io.ReadFull(e.rand, v.value[:]); err != nil {
		return nil, fmt.Errorf("oscore: Echo value: %w", err)
	}
	v.expires = now.Add(e.lifetime)
	e.pending[slot] = v
	out := make([]byte, echoLen)
	copy(out, v.value[:])
	return out, nil
}

// consume reports whether value is an outstanding, unexpired Echo value and
// retires it.
func (e *echoState) consume(value []byte) bool {
	if len(value) != echoLen || e.pending == nil {
		return false
	}
	now := e.now()
	for i := range e.pending {
		p := &e.pending[i]
		if p.used || !now.Before(p.expires) {
			continue
		}
		if subtle.ConstantTimeCompare(p.value[:], value) == 1 {
			p.used = true
			return true
		}
	}
	return false
}
