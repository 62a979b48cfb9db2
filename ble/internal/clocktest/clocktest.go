// Package clocktest is a manual clock for tests of BLE timers: time moves
// only when a test calls Advance, so ack, idle and handshake timeouts are
// exercised without sleeping.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// Clock is a btp.Clock that a test advances by hand.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*timer
}

var _ btp.Clock = (*Clock)(nil)

// New returns a clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run in its own goroutine when Advance passes
// now+d; with d <= 0 it runs f at once, as time.AfterFunc does.
func (c *Clock) AfterFunc(d time.Duration, f func()) btp.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, due: c.now.Add(d), seq: c.seq, f: f}
	if d <= 0 {
		go f()
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Pending is the number of timers not yet fired or stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// TimersAt is the number of pending timers that fall due at t. Tests
// wait for the timers they expect before Advance: a timer armed after
// Advance with a duration computed before it would fall due late.
func (c *Clock) TimersAt(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.timers {
		if tm.due.Equal(t) {
			n++
		}
	}
	return n
}

// Advance moves the clock forward by d and fires the timers that fell
// due, in order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due, keep []*timer
	for _, t := range c.timers {
		if t.due.After(c.now) {
			keep = append(keep, t)
		} else {
			due = append(due, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool {
		if due[i].due.Equal(due[j].due) {
			return due[i].seq < due[j].seq
		}
		return due[i].due.Before(due[j].due)
	})
	for _, t := range due {
		go t.f()
	}
}

type timer struct {
	c   *Clock
	due time.Time
	seq uint64
	f   func()
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, have := range t.c.timers {
		if have == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
