package upstream

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"time"
)

// Default retry backoff of the Deliverer (WithBackoff) and reconnect backoff
// of the MQTT sink (WithReconnectBackoff).
const (
	DefaultBackoffBase   = 500 * time.Millisecond
	DefaultBackoffMax    = 5 * time.Minute
	DefaultReconnectBase = 500 * time.Millisecond
	DefaultReconnectMax  = 30 * time.Second
)

// Backoff is exponential backoff with full jitter: the delay before retry n
// (n >= 1) is uniform in [0, min(Max, Base·2^(n-1))]. Full jitter spreads
// the retries of many gateways that lost the same upstream at the same
// moment, and the cap bounds how long a recovered upstream waits.
type Backoff struct {
	base, max time.Duration
	rand      io.Reader
}

// NewBackoff returns a Backoff drawing its jitter from rand (crypto/rand
// in production, a seeded stream in tests). The Backoff reads rand under
// its own lock, so copies of it may be used concurrently; a reader shared
// with anything else must itself be safe for concurrent use (crypto/rand
// is). 0 < base <= max is required.
func NewBackoff(base, max time.Duration, rand io.Reader) (Backoff, error) {
	if base <= 0 || max < base {
		return Backoff{}, fmt.Errorf("%w: backoff needs 0 < base <= max, got %v and %v", ErrConfig, base, max)
	}
	if rand == nil {
		return Backoff{}, fmt.Errorf("%w: nil rand", ErrConfig)
	}
	if _, ok := rand.(*lockedReader); !ok {
		rand = &lockedReader{r: rand}
	}
	return Backoff{base: base, max: max, rand: rand}, nil
}

// Ceiling is the largest delay for retry n: min(Max, Base·2^(n-1)), and 0
// for n < 1.
func (b Backoff) Ceiling(n int) time.Duration {
	if n < 1 {
		return 0
	}
	d := b.base
	for i := 1; i < n; i++ {
		if d >= b.max/2 {
			return b.max
		}
		d *= 2
	}
	return min(d, b.max)
}

// Delay draws the delay before retry n (n >= 1; 0 for n < 1). If the
// randomness source fails, Delay returns the ceiling: waiting longer is
// always safe.
func (b Backoff) Delay(n int) time.Duration {
	c := b.Ceiling(n)
	if c <= 0 {
		return 0
	}
	var buf [8]byte
	if _, err := io.ReadFull(b.rand, buf[:]); err != nil {
		return c
	}
	// hi = floor(u·(c+1) / 2^64) is uniform in [0, c] up to 2^-64 bias:
	// all-zero bytes give 0 and all-0xff bytes give c.
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(buf[:]), uint64(c)+1)
	return time.Duration(hi)
}

// lockedReader serialises reads of a reader shared by goroutines.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// Clock is the time source of the Deliverer and the sinks: Now stamps
// metrics and webhook signatures, After paces backoff and polling. Tests
// inject a clock that records the waits it is asked for.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// systemClock is the wall clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
