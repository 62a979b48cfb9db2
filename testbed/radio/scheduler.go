package radio

import (
	"container/heap"
	"sync"
	"time"
)

// delivery is one datagram waiting for its delivery time.
type delivery struct {
	due time.Time
	seq uint64 // FIFO among equal due times
	to  *endpoint
	d   datagram
}

type deliveryHeap []delivery

func (h deliveryHeap) Len() int { return len(h) }
func (h deliveryHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h deliveryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)   { *h = append(*h, x.(delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = delivery{}
	*h = old[:len(old)-1]
	return x
}

// scheduler delivers delayed datagrams from one goroutine with one timer.
type scheduler struct {
	mu      sync.Mutex
	pending deliveryHeap
	seq     uint64
	stopped bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newScheduler() *scheduler {
	return &scheduler{
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// add queues d for delivery at due. It reports false after close.
func (s *scheduler) add(due time.Time, to *endpoint, d datagram) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	s.seq++
	heap.Push(&s.pending, delivery{due: due, seq: s.seq, to: to, d: d})
	head := s.pending[0].seq == s.seq
	s.mu.Unlock()
	if head {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

func (s *scheduler) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var ready []delivery
	for {
		ready = ready[:0]
		s.mu.Lock()
		now := time.Now()
		for s.pending.Len() > 0 && !s.pending[0].due.After(now) {
			ready = append(ready, heap.Pop(&s.pending).(delivery))
		}
		wait := time.Duration(-1)
		if s.pending.Len() > 0 {
			wait = s.pending[0].due.Sub(now)
		}
		s.mu.Unlock()
		for i := range ready {
			ready[i].to.n.deliver(ready[i].to, ready[i].d)
			ready[i] = delivery{}
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-s.stop:
			return
		case <-s.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// close stops the scheduler and discards pending deliveries.
func (s *scheduler) close() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.pending = nil
	s.mu.Unlock()
	close(s.stop)
	<-s.done
}
