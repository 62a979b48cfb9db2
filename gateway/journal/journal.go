// Package journal turns gateway events into signed, chained records
// (docs/records.cddl) and commits each one in the same transaction as the
// state change it describes, so a record exists exactly when its event
// does.
//
// Records are signed in the caller's goroutine, not in the store's single
// writer: ECDSA signing is the largest cost of a record and must run on
// every core. What has to be serial is per device (the chain: each record
// names its predecessor), so devices are serialised by a fixed array of
// lock shards, and the store's compare-and-swap on the chain head backs it.
package journal

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

const shards = 4096

// Journal appends records.
type Journal struct {
	store *store.Store
	key   *record.Signer
	rand  io.Reader
	now   func() time.Time
	seq   atomic.Uint64

	shard   [shards]shard
	records *prometheus.CounterVec
	signDur prometheus.Histogram
}

type shard struct {
	mu    sync.Mutex
	heads map[store.DeviceID]record.ID // committed chain heads, filled on first use
}

// Option configures New.
type Option func(*Journal)

// WithClock sets the clock that stamps records.
func WithClock(now func() time.Time) Option { return func(j *Journal) { j.now = now } }

// WithRand sets the randomness for signatures.
func WithRand(r io.Reader) Option { return func(j *Journal) { j.rand = r } }

// WithMetrics registers the journal's metrics.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(j *Journal) {
		if reg != nil {
			reg.MustRegister(j.records, j.signDur)
		}
	}
}

// New returns a journal that signs with key and continues the sequence
// numbers found in s.
func New(ctx context.Context, s *store.Store, key crypto.Signer, opts ...Option) (*Journal, error) {
	signer, err := record.NewSigner(key)
	if err != nil {
		return nil, err
	}
	j := &Journal{store: s, key: signer, rand: rand.Reader, now: time.Now,
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "journal", Name: "records_total", Help: "Records committed, by type.",
		}, []string{"type"}),
		signDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "tumbler", Subsystem: "journal", Name: "append_seconds",
			Help: "Time to sign and durably commit one record.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for i := range j.shard {
		j.shard[i].heads = make(map[store.DeviceID]record.ID)
	}
	for _, o := range opts {
		o(j)
	}
	last, err := s.LastSeq(ctx)
	if err != nil {
		return nil, err
	}
	// A number handed out but never committed before a crash may be
	// handed out again: nobody saw it. Committed numbers never repeat.
	j.seq.Store(last)
	return j, nil
}

// Device names the subject of a record.
type Device struct {
	ID     store.DeviceID
	Serial string
}

// Appended is what Append committed.
type Appended struct {
	Seq  uint64
	ID   record.ID
	COSE []byte
}

// Append signs a record with body about dev and commits it together with
// apply's changes (which may be nil) in one transaction. It returns once
// both are durable; on error neither happened.
func (j *Journal) Append(ctx context.Context, dev Device, body record.TypedBody, apply func(*store.Tx) error) (Appended, error) {
	start := time.Now()
	sh := &j.shard[int(dev.ID[0])<<4|int(dev.ID[1]>>4)]
	sh.mu.Lock()
	defer sh.mu.Unlock()

	prev, ok := sh.heads[dev.ID]
	if !ok {
		head, _, found, err := j.store.ChainHead(ctx, dev.ID)
		if err != nil {
			return Appended{}, err
		}
		if found {
			copy(prev[:], head)
			ok = true
		}
	}
	r := &record.Record{Device: record.DeviceID(dev.ID), Serial: dev.Serial, Time: j.now(), Seq: j.seq.Add(1)}
	if ok {
		p := prev
		r.Prev = &p
	}
	if err := r.SetBody(body); err != nil {
		return Appended{}, fmt.Errorf("journal: %w", err)
	}
	cose, err := j.key.Sign(j.rand, r)
	if err != nil {
		return Appended{}, fmt.Errorf("journal: sign: %w", err)
	}
	id := record.ID(sha256.Sum256(cose))
	var prevBytes []byte
	if ok {
		prevBytes = prev[:]
	}
	err = j.store.Update(ctx, func(tx *store.Tx) error {
		if apply != nil {
			if err := apply(tx); err != nil {
				return err
			}
		}
		return tx.AppendRecord(store.Record{Seq: r.Seq, Device: dev.ID, Serial: dev.Serial, Type: string(r.Type), Time: r.Time, ID: id, COSE: cose}, prevBytes)
	})
	if err != nil {
		// The cached head may be stale only if the store disagrees; drop
		// it so the next append reads the committed one.
		delete(sh.heads, dev.ID)
		return Appended{}, err
	}
	sh.heads[dev.ID] = id
	j.records.WithLabelValues(string(r.Type)).Inc()
	j.signDur.Observe(time.Since(start).Seconds())
	return Appended{Seq: r.Seq, ID: id, COSE: cose}, nil
}
