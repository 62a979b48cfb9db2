package upstream

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"
	"time"
)

// MemorySource is a Source held in memory, for tests, benchmarks and the
// testbed. It is not durable: a restart forgets records and cursors.
type MemorySource struct {
	mu      sync.Mutex
	recs    []Record // in Seq order
	cursors map[string]uint64
	parked  map[string]map[uint64]ParkedRecord
	notify  chan struct{}
}

// ParkedRecord is a record a sink refused, with the reason.
type ParkedRecord struct {
	Record
	Reason string
}

// NewMemorySource returns an empty MemorySource.
func NewMemorySource() *MemorySource {
	return &MemorySource{
		cursors: make(map[string]uint64),
		parked:  make(map[string]map[uint64]ParkedRecord),
		notify:  make(chan struct{}, 1),
	}
}

// Append adds records and notifies. A zero Seq is assigned the next
// number, a zero ID the SHA-256 of COSE; a given Seq must exceed the last
// one (ErrSourceOrder otherwise, and nothing is added). A MemorySource
// commits in sequence order, so a record's Pos is its Seq.
func (m *MemorySource) Append(recs ...Record) error {
	m.mu.Lock()
	last := uint64(0)
	if n := len(m.recs); n > 0 {
		last = m.recs[n-1].Seq
	}
	add := make([]Record, len(recs))
	for i, r := range recs {
		if r.Seq == 0 {
			r.Seq = last + 1
		}
		if r.Seq <= last {
			m.mu.Unlock()
			return fmt.Errorf("%w: append seq %d after %d", ErrSourceOrder, r.Seq, last)
		}
		if r.ID == ([32]byte{}) {
			r.ID = sha256.Sum256(r.COSE)
		}
		last = r.Seq
		r.Pos = r.Seq
		add[i] = r
	}
	m.recs = append(m.recs, add...)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return nil
}

// after returns the index of the first record with Seq > seq.
func (m *MemorySource) after(seq uint64) int {
	return sort.Search(len(m.recs), func(i int) bool { return m.recs[i].Seq > seq })
}

// Next implements Source.
func (m *MemorySource) Next(ctx context.Context, sink string, limit int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	parked := m.parked[sink]
	var out []Record
	for i := m.after(m.cursors[sink]); i < len(m.recs) && len(out) < limit; i++ {
		if _, p := parked[m.recs[i].Seq]; !p {
			out = append(out, m.recs[i])
		}
	}
	return out, nil
}

// Ack implements Source (pos is a Seq here). The cursor never moves back;
// acking beyond the last record is ErrSourceOrder.
func (m *MemorySource) Ack(ctx context.Context, sink string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.recs); n == 0 || seq > m.recs[n-1].Seq {
		return fmt.Errorf("%w: ack %d beyond the last record", ErrSourceOrder, seq)
	}
	if seq > m.cursors[sink] {
		m.cursors[sink] = seq
	}
	return nil
}

// Park implements Source.
func (m *MemorySource) Park(ctx context.Context, sink string, rec Record, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.parked[sink] == nil {
		m.parked[sink] = make(map[uint64]ParkedRecord)
	}
	m.parked[sink][rec.Seq] = ParkedRecord{Record: rec, Reason: reason}
	return nil
}

// Notify implements Source.
func (m *MemorySource) Notify() <-chan struct{} { return m.notify }

// Backlog implements Source.
func (m *MemorySource) Backlog(ctx context.Context, sink string) (int, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		n      int
		oldest time.Time
	)
	parked := m.parked[sink]
	for i := m.after(m.cursors[sink]); i < len(m.recs); i++ {
		if _, p := parked[m.recs[i].Seq]; p {
			continue
		}
		if n == 0 {
			oldest = m.recs[i].Time
		}
		n++
	}
	return n, oldest, nil
}

// Cursor returns the sink's cursor: every record up to it is delivered or
// parked.
func (m *MemorySource) Cursor(sink string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursors[sink]
}

// Parked returns the records parked for sink, in Seq order.
func (m *MemorySource) Parked(sink string) []ParkedRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ParkedRecord, 0, len(m.parked[sink]))
	for _, p := range m.parked[sink] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}
