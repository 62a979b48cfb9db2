package upstream

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads a gauge or counter.
func value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// familyCount is how many series of the named family reg holds.
func familyCount(t testing.TB, reg *prometheus.Registry, name string) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

// scriptedSink answers each Deliver call with script(call number from 1,
// recs) and remembers the seqs it was given.
type scriptedSink struct {
	name   string
	script func(call int, recs []Record) (Result, error)

	mu    sync.Mutex
	calls [][]uint64
}

func (s *scriptedSink) Name() string { return s.name }

func (s *scriptedSink) Deliver(_ context.Context, recs []Record) (Result, error) {
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		seqs[i] = r.Seq
	}
	s.mu.Lock()
	s.calls = append(s.calls, seqs)
	n := len(s.calls)
	s.mu.Unlock()
	return s.script(n, recs)
}

func (s *scriptedSink) callLog() [][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// all returns a Result with every record in state st.
func all(recs []Record, st State) Result {
	r := Result{Outcomes: make([]Outcome, len(recs))}
	for i := range r.Outcomes {
		r.Outcomes[i] = Outcome{State: st, Reason: "scripted " + st.String()}
	}
	return r
}

// Intervals the fake-clock tests use, so their waits can be told apart
// from backoff waits.
const (
	testPoll    = 7 * time.Second
	testMetrics = 11 * time.Second
)

func fakeClockOptions(c *fakeClock, rnd constReader) []Option {
	return []Option{WithClock(c), WithRand(rnd), WithPollInterval(testPoll), WithMetricsInterval(testMetrics)}
}

func TestDelivererAcksPrefixAndParks(t *testing.T) {
	recs := testRecords(5, 5)
	src := filledSource(t, recs)
	sink := &scriptedSink{name: "s", script: func(call int, recs []Record) (Result, error) {
		if call > 1 {
			return all(recs, Delivered), nil
		}
		return Result{Outcomes: []Outcome{
			{State: Delivered},
			{State: Delivered},
			{State: Parked, Reason: "http 400 Bad Request"},
			{State: Retry, Reason: "http 503"},
			{State: Delivered},
		}}, nil
	}}
	reg := prometheus.NewRegistry()
	clock := &fakeClock{now: baseTime}
	d, err := NewDeliverer(src, []Sink{sink}, append(fakeClockOptions(clock, 0), WithRegisterer(reg))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := runDeliverer(t, d)
	waitFor(t, 5*time.Second, "cursor at 5", func() bool { return src.Cursor("s") == 5 })
	stop()

	calls := sink.callLog()
	if len(calls) < 2 || !slices.Equal(calls[0], []uint64{1, 2, 3, 4, 5}) || !slices.Equal(calls[1], []uint64{4, 5}) {
		t.Errorf("calls = %v, want [1..5] then [4 5]", calls)
	}
	parked := src.Parked("s")
	if len(parked) != 1 || parked[0].Seq != 3 || parked[0].Reason != "http 400 Bad Request" {
		t.Errorf("parked = %+v, want seq 3 with its reason", parked)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"delivered_total", value(t, d.m.delivered.WithLabelValues("s")), 4},
		{"parked_total", value(t, d.m.parked.WithLabelValues("s")), 1},
		{"retried_total", value(t, d.m.retried.WithLabelValues("s")), 1},
		{"sink_up", value(t, d.m.up.WithLabelValues("s")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := familyCount(t, reg, "tumbler_upstream_delivery_latency_seconds"); n != 1 {
		t.Errorf("latency histogram series = %d, want 1", n)
	}
}

func TestDelivererBackoff(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name    string
		rnd     constReader
		opts    []Option
		n       int
		outcome func(call int) Outcome
		want    []time.Duration
	}{
		{
			name: "exponential, reset after success",
			rnd:  0xff, n: 2,
			// batch size 1: rec 1 fails twice, succeeds; rec 2 fails once, succeeds.
			outcome: func(call int) Outcome {
				if call == 1 || call == 2 || call == 4 {
					return Outcome{State: Retry, Reason: "down"}
				}
				return Outcome{State: Delivered}
			},
			want: []time.Duration{500 * ms, time.Second, 500 * ms},
		},
		{
			name: "cap respected",
			rnd:  0xff, n: 1, opts: []Option{WithBackoff(100*ms, 300*ms)},
			outcome: func(call int) Outcome {
				if call <= 4 {
					return Outcome{State: Retry, Reason: "down"}
				}
				return Outcome{State: Delivered}
			},
			want: []time.Duration{100 * ms, 200 * ms, 300 * ms, 300 * ms},
		},
		{
			name: "Retry-After lengthens the wait, up to the cap",
			rnd:  0x00, n: 1,
			outcome: func(call int) Outcome {
				switch call {
				case 1:
					return Outcome{State: Retry, Reason: "http 429", RetryAfter: 3 * time.Second}
				case 2:
					return Outcome{State: Retry, Reason: "http 503", RetryAfter: time.Hour}
				default:
					return Outcome{State: Delivered}
				}
			},
			want: []time.Duration{3 * time.Second, DefaultBackoffMax},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := testRecords(tt.n, 1)
			src := filledSource(t, recs)
			sink := &scriptedSink{name: "s", script: func(call int, recs []Record) (Result, error) {
				return Result{Outcomes: []Outcome{tt.outcome(call)}}, nil
			}}
			clock := &fakeClock{now: baseTime}
			opts := append(fakeClockOptions(clock, tt.rnd), WithBatchSize(1))
			d, err := NewDeliverer(src, []Sink{sink}, append(opts, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			stop := runDeliverer(t, d)
			waitFor(t, 5*time.Second, "all delivered", func() bool { return src.Cursor("s") == uint64(tt.n) })
			stop()
			if got := clock.waitsExcept(testPoll, testMetrics); !slices.Equal(got, tt.want) {
				t.Errorf("backoff waits = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDelivererNotifyWakesIdleSink(t *testing.T) {
	src := NewMemorySource()
	sink := &scriptedSink{name: "s", script: func(_ int, recs []Record) (Result, error) { return all(recs, Delivered), nil }}
	// Two sinks share the one Notify channel; both must wake.
	sink2 := &scriptedSink{name: "s2", script: sink.script}
	d, err := NewDeliverer(src, []Sink{sink, sink2}, WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stop := runDeliverer(t, d)
	time.Sleep(20 * time.Millisecond) // let both loops go idle
	if err := src.Append(testRecords(3, 2)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both sinks at 3", func() bool { return src.Cursor("s") == 3 && src.Cursor("s2") == 3 })
	stop()
}

// wakingSink fails its first Deliver and then fires Wake, like an MQTT
// sink whose broker comes back.
type wakingSink struct {
	scriptedSink
	wake chan struct{}
}

func (w *wakingSink) Wake() <-chan struct{} { return w.wake }

func TestDelivererWakeCutsBackoffShort(t *testing.T) {
	src := filledSource(t, testRecords(2, 1))
	w := &wakingSink{wake: make(chan struct{}, 1)}
	w.scriptedSink = scriptedSink{name: "s", script: func(call int, recs []Record) (Result, error) {
		if call == 1 {
			go func() {
				time.Sleep(20 * time.Millisecond) // after the backoff began
				w.wake <- struct{}{}
			}()
			return all(recs, Retry), ErrNotConnected
		}
		return all(recs, Delivered), nil
	}}
	// A one-hour backoff on the real clock: only Wake can end it in time.
	d, err := NewDeliverer(src, []Sink{w}, WithBackoff(time.Hour, time.Hour), WithRand(constReader(0xff)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runDeliverer(t, d)
	waitFor(t, 5*time.Second, "delivery after wake", func() bool { return src.Cursor("s") == 2 })
	stop()
}

// flakySource fails the first n calls to Next, and can reverse batches.
type flakySource struct {
	*MemorySource
	mu      sync.Mutex
	fail    int
	reverse bool
}

func (f *flakySource) Next(ctx context.Context, sink string, limit int) ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("database is locked")
	}
	recs, err := f.MemorySource.Next(ctx, sink, limit)
	if f.reverse {
		slices.Reverse(recs)
	}
	return recs, err
}

func TestDelivererSourceFailures(t *testing.T) {
	t.Run("errors back off and recover", func(t *testing.T) {
		src := &flakySource{MemorySource: filledSource(t, testRecords(3, 1)), fail: 2}
		sink := &scriptedSink{name: "s", script: func(_ int, recs []Record) (Result, error) { return all(recs, Delivered), nil }}
		clock := &fakeClock{now: baseTime}
		d, err := NewDeliverer(src, []Sink{sink}, fakeClockOptions(clock, 0xff)...)
		if err != nil {
			t.Fatal(err)
		}
		stop := runDeliverer(t, d)
		waitFor(t, 5*time.Second, "delivered", func() bool { return src.Cursor("s") == 3 })
		stop()
		if got, want := clock.waitsExcept(testPoll, testMetrics), []time.Duration{500 * time.Millisecond, time.Second}; !slices.Equal(got, want) {
			t.Errorf("waits = %v, want %v", got, want)
		}
	})
	t.Run("out of order batch is refused", func(t *testing.T) {
		src := &flakySource{MemorySource: filledSource(t, testRecords(3, 1)), reverse: true}
		sink := &scriptedSink{name: "s", script: func(_ int, recs []Record) (Result, error) { return all(recs, Delivered), nil }}
		d, err := NewDeliverer(src, []Sink{sink}, fakeClockOptions(&fakeClock{now: baseTime}, 0)...)
		if err != nil {
			t.Fatal(err)
		}
		stop := runDeliverer(t, d)
		waitFor(t, 5*time.Second, "retries", func() bool { return value(t, d.m.retried.WithLabelValues("s")) >= 3 })
		stop()
		if calls := sink.callLog(); len(calls) != 0 {
			t.Errorf("sink got %v from an out-of-order source", calls)
		}
	})
}

func TestDelivererBacklogMetrics(t *testing.T) {
	recs := testRecords(10, 2)
	src := filledSource(t, recs)
	sink := &scriptedSink{name: "s", script: func(_ int, recs []Record) (Result, error) { return all(recs, Retry), nil }}
	clock := &fakeClock{now: baseTime.Add(time.Hour)}
	d, err := NewDeliverer(src, []Sink{sink}, WithClock(clock), WithRand(constReader(0)), WithMetricsInterval(minInterval))
	if err != nil {
		t.Fatal(err)
	}
	stop := runDeliverer(t, d)
	waitFor(t, 5*time.Second, "backlog gauge", func() bool { return value(t, d.m.backlog.WithLabelValues("s")) == 10 })
	stop()
	if got := value(t, d.m.oldestAge.WithLabelValues("s")); got != 3600 {
		t.Errorf("oldest_undelivered_age_seconds = %v, want 3600", got)
	}
	if got := value(t, d.m.up.WithLabelValues("s")); got != 0 {
		t.Errorf("sink_up = %v, want 0 while blocked", got)
	}
	if src.Cursor("s") != 0 {
		t.Errorf("cursor moved to %d with every record failing", src.Cursor("s"))
	}
}

// failingRunner is a sink whose Run fails.
type failingRunner struct{ scriptedSink }

var errBroken = errors.New("broken sink")

func (f *failingRunner) Run(context.Context) error { return errBroken }

func TestDelivererRun(t *testing.T) {
	t.Run("twice", func(t *testing.T) {
		sink := &scriptedSink{name: "s", script: func(_ int, recs []Record) (Result, error) { return all(recs, Delivered), nil }}
		d, err := NewDeliverer(NewMemorySource(), []Sink{sink})
		if err != nil {
			t.Fatal(err)
		}
		stop := runDeliverer(t, d)
		time.Sleep(10 * time.Millisecond)
		if err := d.Run(context.Background()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run = %v, want ErrRunning", err)
		}
		stop()
	})
	t.Run("a failing sink Runner ends Run", func(t *testing.T) {
		sink := &failingRunner{scriptedSink{name: "s", script: func(_ int, recs []Record) (Result, error) { return all(recs, Delivered), nil }}}
		d, err := NewDeliverer(NewMemorySource(), []Sink{sink})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Run(ctx); !errors.Is(err, errBroken) {
			t.Errorf("Run = %v, want the runner's error", err)
		}
	})
}

func TestNewDelivererErrors(t *testing.T) {
	ok := &scriptedSink{name: "s"}
	tests := []struct {
		name  string
		src   Source
		sinks []Sink
		opts  []Option
	}{
		{name: "nil source", sinks: []Sink{ok}},
		{name: "no sinks", src: NewMemorySource()},
		{name: "nil sink", src: NewMemorySource(), sinks: []Sink{nil}},
		{name: "bad sink name", src: NewMemorySource(), sinks: []Sink{&scriptedSink{name: "a/b"}}},
		{name: "duplicate names", src: NewMemorySource(), sinks: []Sink{ok, &scriptedSink{name: "s"}}},
		{name: "batch zero", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithBatchSize(0)}},
		{name: "batch huge", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithBatchSize(1 << 20)}},
		{name: "backoff inverted", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithBackoff(time.Minute, time.Second)}},
		{name: "poll too fast", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithPollInterval(time.Microsecond)}},
		{name: "nil clock", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithClock(nil)}},
		{name: "nil rand", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithRand(nil)}},
		{name: "nil registerer", src: NewMemorySource(), sinks: []Sink{ok}, opts: []Option{WithRegisterer(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewDeliverer(tt.src, tt.sinks, tt.opts...); !errors.Is(err, ErrConfig) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
		})
	}
	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := NewDeliverer(NewMemorySource(), []Sink{ok}, WithRegisterer(reg)); err != nil {
			t.Fatal(err)
		}
		if _, err := NewDeliverer(NewMemorySource(), []Sink{ok}, WithRegisterer(reg)); !errors.Is(err, ErrConfig) {
			t.Errorf("err = %v, want ErrConfig", err)
		}
	})
}
