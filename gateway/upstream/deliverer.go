package upstream

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Deliverer defaults and bounds.
const (
	// DefaultBatchSize: each batch ends in one durable cursor commit (an
	// fsync), so batches must be large for a backlog to drain fast: with
	// the SQLite outbox, 1024 drains about 2.7 times faster than 256.
	DefaultBatchSize       = 1024
	DefaultPollInterval    = 5 * time.Second
	DefaultMetricsInterval = 2 * time.Second
	maxBatchSize           = 10000
	minInterval            = 10 * time.Millisecond
)

// Deliverer drains a Source into sinks: one goroutine per sink, each with
// its own cursor, so a slow or failed upstream never holds up another.
//
// Per sink it loops: Next (a batch after the cursor) → Deliver → Park the
// refused records and Ack the longest prefix of the batch that is
// delivered or parked → repeat. The first record that needs a retry blocks
// the sink (head-of-line): the Deliverer backs off (WithBackoff) and
// retries from that record, so no record is skipped and per-device order
// holds. Records after it that the sink did deliver are delivered again
// (at least once; the record id is the idempotency key). An idle sink
// waits for Source.Notify or the poll interval. Run calls Notify once and
// fans each signal out to every sink, so one shared channel is right.
type Deliverer struct {
	src   Source
	sinks []Sink

	log         zerolog.Logger
	clock       Clock
	rand        io.Reader
	base, max   time.Duration
	batch       int
	poll        time.Duration
	metricEvery time.Duration
	reg         prometheus.Registerer

	backoff Backoff
	m       *metrics
	running atomic.Bool
}

// Option configures a Deliverer. Options validate their argument and make
// NewDeliverer fail with ErrConfig.
type Option func(*Deliverer) error

// WithLogger sets the logger (default: disabled). Sink state changes and
// parked records are logged at info, each delivered record at debug
// (rate-limited).
func WithLogger(l zerolog.Logger) Option {
	return func(d *Deliverer) error {
		d.log = l.With().Str("component", "upstream").Logger()
		return nil
	}
}

// WithClock sets the clock for backoff waits, polling and metrics (default:
// the system clock).
func WithClock(c Clock) Option {
	return func(d *Deliverer) error {
		if c == nil {
			return fmt.Errorf("%w: nil clock", ErrConfig)
		}
		d.clock = c
		return nil
	}
}

// WithRand sets the randomness for backoff jitter (default crypto/rand).
func WithRand(r io.Reader) Option {
	return func(d *Deliverer) error {
		if r == nil {
			return fmt.Errorf("%w: nil rand", ErrConfig)
		}
		d.rand = r
		return nil
	}
}

// WithBackoff sets the retry backoff: full jitter, ceiling doubling from
// base up to max (default DefaultBackoffBase to DefaultBackoffMax). A
// Retry-After from the upstream lengthens a wait up to max, never beyond.
func WithBackoff(base, max time.Duration) Option {
	return func(d *Deliverer) error {
		if base <= 0 || max < base {
			return fmt.Errorf("%w: backoff needs 0 < base <= max, got %v and %v", ErrConfig, base, max)
		}
		d.base, d.max = base, max
		return nil
	}
}

// WithBatchSize sets how many records one Deliver call gets, 1 to 10000
// (default DefaultBatchSize).
func WithBatchSize(n int) Option {
	return func(d *Deliverer) error {
		if n < 1 || n > maxBatchSize {
			return fmt.Errorf("%w: batch size %d outside [1, %d]", ErrConfig, n, maxBatchSize)
		}
		d.batch = n
		return nil
	}
}

// WithPollInterval sets how often an idle sink looks for records without a
// Notify (default DefaultPollInterval, at least 10ms).
func WithPollInterval(p time.Duration) Option {
	return func(d *Deliverer) error {
		if p < minInterval {
			return fmt.Errorf("%w: poll interval %v below %v", ErrConfig, p, minInterval)
		}
		d.poll = p
		return nil
	}
}

// WithMetricsInterval sets how often the backlog gauges are refreshed from
// Source.Backlog (default DefaultMetricsInterval, at least 10ms).
func WithMetricsInterval(p time.Duration) Option {
	return func(d *Deliverer) error {
		if p < minInterval {
			return fmt.Errorf("%w: metrics interval %v below %v", ErrConfig, p, minInterval)
		}
		d.metricEvery = p
		return nil
	}
}

// WithRegisterer registers the metrics with r (default: not registered).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(d *Deliverer) error {
		if r == nil {
			return fmt.Errorf("%w: nil registerer", ErrConfig)
		}
		d.reg = r
		return nil
	}
}

// NewDeliverer returns a Deliverer of src to sinks. Sink names must be
// valid (see SinkConfig) and distinct: each is a cursor in src.
func NewDeliverer(src Source, sinks []Sink, opts ...Option) (*Deliverer, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil source", ErrConfig)
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("%w: no sinks", ErrConfig)
	}
	seen := make(map[string]bool, len(sinks))
	for i, s := range sinks {
		if s == nil {
			return nil, fmt.Errorf("%w: sink %d is nil", ErrConfig, i)
		}
		if err := validName(s.Name()); err != nil {
			return nil, fmt.Errorf("%w: sink %d: name %q: %s", ErrConfig, i, s.Name(), err)
		}
		if seen[s.Name()] {
			return nil, fmt.Errorf("%w: two sinks named %q", ErrConfig, s.Name())
		}
		seen[s.Name()] = true
	}
	d := &Deliverer{
		src:         src,
		sinks:       append([]Sink(nil), sinks...),
		log:         zerolog.Nop(),
		clock:       systemClock{},
		rand:        rand.Reader,
		base:        DefaultBackoffBase,
		max:         DefaultBackoffMax,
		batch:       DefaultBatchSize,
		poll:        DefaultPollInterval,
		metricEvery: DefaultMetricsInterval,
		m:           newMetrics(),
	}
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, err
		}
	}
	b, err := NewBackoff(d.base, d.max, d.rand)
	if err != nil {
		return nil, err
	}
	d.backoff = b
	if d.reg != nil {
		if err := d.m.register(d.reg); err != nil {
			return nil, err
		}
	}
	for _, s := range d.sinks {
		d.m.up.WithLabelValues(s.Name()).Set(1)
	}
	return d, nil
}

// Run delivers until ctx is cancelled, then stops every sink loop and
// sink Runner and returns nil. It returns early with the error of a sink
// Runner that fails. Run may be called once.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	g, ctx := errgroup.WithContext(ctx)
	loops := make([]*sinkLoop, len(d.sinks))
	for i, s := range d.sinks {
		l := &sinkLoop{
			d:      d,
			sink:   s,
			name:   s.Name(),
			log:    d.log.With().Str("sink", s.Name()).Logger(),
			notify: make(chan struct{}, 1),
		}
		l.recLog = l.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
		if w, ok := s.(Waker); ok {
			l.wake = w.Wake()
		}
		loops[i] = l
		if r, ok := s.(Runner); ok {
			g.Go(func() error {
				if err := r.Run(ctx); err != nil && ctx.Err() == nil {
					return fmt.Errorf("upstream: sink %q: %w", l.name, err)
				}
				return nil
			})
		}
		g.Go(func() error { l.run(ctx); return nil })
	}
	g.Go(func() error { d.fanOut(ctx, loops); return nil })
	g.Go(func() error { d.refreshMetrics(ctx, loops); return nil })
	return g.Wait()
}

// fanOut turns the Source's one Notify channel into a coalesced wake-up
// per sink, so that every sink sees every commit.
func (d *Deliverer) fanOut(ctx context.Context, loops []*sinkLoop) {
	ch := d.src.Notify()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				d.log.Info().Msg("source notify channel closed; polling only")
				ch = nil
				continue
			}
			for _, l := range loops {
				select {
				case l.notify <- struct{}{}:
				default:
				}
			}
		}
	}
}

// refreshMetrics keeps the backlog gauges current, also while a sink is
// backing off during an outage (which is when they matter).
func (d *Deliverer) refreshMetrics(ctx context.Context, loops []*sinkLoop) {
	for {
		for _, l := range loops {
			n, oldest, err := d.src.Backlog(ctx, l.name)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				l.recLog.Debug().Err(err).Msg("backlog query failed")
				continue
			}
			d.m.backlog.WithLabelValues(l.name).Set(float64(n))
			age := 0.0
			if n > 0 && !oldest.IsZero() {
				age = max(0, d.clock.Now().Sub(oldest).Seconds())
			}
			d.m.oldestAge.WithLabelValues(l.name).Set(age)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.clock.After(d.metricEvery):
		}
	}
}

// sinkLoop is the delivery state of one sink.
type sinkLoop struct {
	d      *Deliverer
	sink   Sink
	name   string
	log    zerolog.Logger
	recLog zerolog.Logger // rate-limited, for per-record lines
	notify chan struct{}
	wake   <-chan struct{} // nil unless the sink is a Waker

	lastAcked    uint64 // the highest position this loop acked (0 before the first)
	failures     int    // consecutive failed attempts; 0 after any progress
	blockedSince time.Time
}

func (l *sinkLoop) run(ctx context.Context) {
	d := l.d
	for ctx.Err() == nil {
		recs, err := d.src.Next(ctx, l.name, d.batch)
		if err == nil {
			err = l.checkOrder(recs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.fail(ctx, fmt.Errorf("source: %w", err), 0)
			continue
		}
		if len(recs) == 0 {
			l.recovered()
			select {
			case <-ctx.Done():
			case <-l.notify:
			case <-d.clock.After(d.poll):
			}
			continue
		}
		l.drainWake()
		start := d.clock.Now()
		res, derr := l.sink.Deliver(ctx, recs)
		d.m.batch.WithLabelValues(l.name).Observe(d.clock.Now().Sub(start).Seconds())
		n, serr := l.settle(ctx, recs, res)
		if n > 0 {
			l.recovered()
		}
		if n == len(recs) && serr == nil {
			if derr != nil {
				l.log.Debug().Err(derr).Msg("sink reported an error for a settled batch")
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		var retryAfter time.Duration
		cause := serr
		if cause == nil {
			o := res.outcome(n)
			retryAfter = o.RetryAfter
			cause = fmt.Errorf("seq %d: %s", recs[n].Seq, o.Reason)
			if derr != nil {
				cause = fmt.Errorf("%w (seq %d: %s)", derr, recs[n].Seq, o.Reason)
			}
		}
		l.fail(ctx, cause, retryAfter)
	}
}

// checkOrder refuses a batch that would break the cursor's monotonicity.
func (l *sinkLoop) checkOrder(recs []Record) error {
	prev := l.lastAcked
	for i, r := range recs {
		if r.Pos <= prev {
			return fmt.Errorf("%w: record %d has position %d after %d", ErrSourceOrder, i, r.Pos, prev)
		}
		prev = r.Pos
	}
	return nil
}

// settle parks the refused records and acks the longest delivered-or-parked
// prefix of recs. It returns the length of that prefix (0 if the Ack
// failed).
func (l *sinkLoop) settle(ctx context.Context, recs []Record, res Result) (int, error) {
	d := l.d
	n := 0
	var perr error
prefix:
	for i, rec := range recs {
		o := res.outcome(i)
		switch o.State {
		case Delivered:
		case Parked:
			reason := o.Reason
			if reason == "" {
				reason = "refused by upstream"
			}
			if err := d.src.Park(ctx, l.name, rec, reason); err != nil {
				perr = fmt.Errorf("park seq %d: %w", rec.Seq, err)
				break prefix
			}
			d.m.parked.WithLabelValues(l.name).Inc()
			l.log.Info().Uint64("seq", rec.Seq).Str("record", rec.IDHex()).Str("type", rec.Type).
				Str("device", rec.DeviceHex()).Str("reason", reason).Msg("record parked")
		default:
			break prefix
		}
		n = i + 1
	}
	if n == 0 {
		return 0, perr
	}
	last := recs[n-1].Pos
	if err := d.src.Ack(ctx, l.name, last); err != nil {
		return 0, errors.Join(perr, fmt.Errorf("ack position %d: %w", last, err))
	}
	l.lastAcked = last
	now := d.clock.Now()
	for i, rec := range recs[:n] {
		if res.outcome(i).State != Delivered {
			continue
		}
		d.m.delivered.WithLabelValues(l.name).Inc()
		if !rec.Time.IsZero() {
			d.m.latency.WithLabelValues(l.name).Observe(max(0, now.Sub(rec.Time).Seconds()))
		}
		l.recLog.Debug().Uint64("seq", rec.Seq).Str("record", rec.IDHex()).Str("type", rec.Type).
			Str("device", rec.DeviceHex()).Msg("record delivered")
	}
	return n, perr
}

// fail counts a failed attempt and waits out the backoff: the jittered
// delay, lengthened to retryAfter (at most the backoff maximum), cut short
// by ctx or by the sink's Wake.
func (l *sinkLoop) fail(ctx context.Context, cause error, retryAfter time.Duration) {
	d := l.d
	l.failures++
	d.m.retried.WithLabelValues(l.name).Inc()
	d.m.up.WithLabelValues(l.name).Set(0)
	delay := d.backoff.Delay(l.failures)
	if retryAfter > delay {
		delay = min(retryAfter, d.max)
	}
	if l.failures == 1 {
		l.blockedSince = d.clock.Now()
		l.log.Info().Err(cause).Dur("retry_in", delay).Msg("sink blocked; retrying with backoff")
	} else {
		l.recLog.Debug().Err(cause).Int("attempt", l.failures).Dur("retry_in", delay).Msg("retrying")
	}
	select {
	case <-ctx.Done():
	case <-d.clock.After(delay):
	case <-l.wake:
		l.log.Debug().Msg("link back up; retrying now")
	}
}

// recovered ends a blocked period.
func (l *sinkLoop) recovered() {
	if l.failures == 0 {
		return
	}
	d := l.d
	l.log.Info().Int("attempts", l.failures).Dur("blocked_for", d.clock.Now().Sub(l.blockedSince)).Msg("sink recovered")
	l.failures = 0
	d.m.up.WithLabelValues(l.name).Set(1)
}

// drainWake discards a stale Wake so that it cannot cut short a later
// backoff that has nothing to do with the link.
func (l *sinkLoop) drainWake() {
	select {
	case <-l.wake:
	default:
	}
}
