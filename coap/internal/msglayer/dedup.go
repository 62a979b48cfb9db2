package msglayer

import (
	"sync"
	"time"
)

// dedupKey identifies a message from a peer (RFC 7252 §4.5: Message ID
// plus source endpoint).
type dedupKey struct {
	peer string
	mid  uint16
}

// dedupEntry is the state of one exchange: in flight until resp is known.
type dedupEntry struct {
	key     dedupKey
	token   string // a retransmission repeats the token; a reused MID need not
	expires time.Time
	done    bool
	resp    []byte // encoded response; nil for "answered with nothing"
}

type dedupState int

const (
	dedupNew      dedupState = iota // first copy: process it
	dedupInFlight                   // duplicate while the first copy is processed
	dedupDone                       // duplicate of an answered message
)

// dedup remembers recent exchanges for the exchange lifetime, bounded by
// maxEntries. Entries expire in insertion order because the lifetime is
// fixed, so a FIFO ring serves both expiry and eviction.
type dedup struct {
	lifetime   time.Duration
	maxEntries int

	mu      sync.Mutex
	entries map[dedupKey]*dedupEntry
	fifo    []*dedupEntry // ring buffer, oldest at head
	head    int
	size    int
}

func newDedup(lifetime time.Duration, maxEntries int) *dedup {
	return &dedup{
		lifetime:   lifetime,
		maxEntries: maxEntries,
		entries:    make(map[dedupKey]*dedupEntry),
		fifo:       make([]*dedupEntry, maxEntries),
	}
}

// begin looks key up. A known key with the same token is a duplicate: it
// returns the state and, when done, the cached response. Otherwise it
// records a new in-flight entry (replacing one whose Message ID the peer
// reused with another token) and returns it for finish.
func (d *dedup) begin(key dedupKey, token []byte, now time.Time) (dedupState, []byte, *dedupEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(now)
	if e, ok := d.entries[key]; ok && e.token == string(token) {
		if !e.done {
			return dedupInFlight, nil, nil
		}
		return dedupDone, e.resp, nil
	}
	if d.size == d.maxEntries {
		d.popLocked() // evict the oldest
	}
	e := &dedupEntry{key: key, token: string(token), expires: now.Add(d.lifetime)}
	d.entries[key] = e
	d.fifo[(d.head+d.size)%d.maxEntries] = e
	d.size++
	return dedupNew, nil, e
}

// finish records the response of the exchange begin returned (nil when
// nothing was sent).
func (d *dedup) finish(e *dedupEntry, resp []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e.done, e.resp = true, resp
}

// expire drops entries older than the lifetime.
func (d *dedup) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(now)
}

func (d *dedup) expireLocked(now time.Time) {
	for d.size > 0 && !d.fifo[d.head].expires.After(now) {
		d.popLocked()
	}
}

func (d *dedup) popLocked() {
	e := d.fifo[d.head]
	d.fifo[d.head] = nil
	d.head = (d.head + 1) % d.maxEntries
	d.size--
	if d.entries[e.key] == e {
		delete(d.entries, e.key)
	}
}

// len is the number of remembered exchanges.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.size
}
