// Package store is the gateway's durable state: one SQLite file (WAL,
// synchronous=FULL) holding devices, voucher exchanges, telemetry, issued
// certificates and, in later schema versions, the record chain and outbox.
//
// All writes go through one writer goroutine (Update). Concurrent Update
// calls are grouped into one transaction and one fsync (group commit); each
// caller's function runs in its own SAVEPOINT, so one caller's failure rolls
// back only its own changes. Update returns only after the transaction that
// holds the caller's changes is durable: "acknowledge after commit" is the
// caller's contract with its peer, and this is what makes it possible.
//
// Reads use a separate pool of read-only connections and never block on the
// writer (WAL).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Store is the gateway database.
type Store struct {
	w   *sql.DB // the writer's single connection
	r   *sql.DB // readers
	log zerolog.Logger
	now func() time.Time

	maxBatch int
	ops      chan *op
	done     chan struct{}
	stop     chan struct{}
	closeMu  sync.Once
	stats    Stats
	statsMu  sync.Mutex
	// stmts caches statements prepared on the writer's connection; only the
	// writer goroutine touches it.
	stmts map[string]*sql.Stmt
	// records is signalled after commits that appended records; subs are
	// further subscribers (SubscribeRecords).
	records chan struct{}
	subMu   sync.Mutex
	subs    map[chan struct{}]struct{}
	// reads are the hot read statements, prepared on the reader pool.
	reads map[string]*sql.Stmt
	// readOnly stores have no writer.
	readOnly bool
}

// Stats counts group commits.
type Stats struct {
	Commits uint64 // transactions committed
	Ops     uint64 // Update calls committed
	Failed  uint64 // Update calls that returned an error
}

type op struct {
	ctx  context.Context
	fn   func(*Tx) error
	err  error
	done chan struct{}
}

// Option configures Open.
type Option func(*Store) error

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(s *Store) error { s.log = l.With().Str("component", "store").Logger(); return nil }
}

// WithClock sets the clock used for timestamps.
func WithClock(now func() time.Time) Option {
	return func(s *Store) error {
		if now == nil {
			return fmt.Errorf("store: %w: nil clock", ErrConfig)
		}
		s.now = now
		return nil
	}
}

// WithMaxBatch bounds how many Update calls share one transaction (default 256).
func WithMaxBatch(n int) Option {
	return func(s *Store) error {
		if n < 1 {
			return fmt.Errorf("store: %w: max batch %d", ErrConfig, n)
		}
		s.maxBatch = n
		return nil
	}
}

// OpenReadOnly opens an existing database for reading only, beside a
// running gateway (WAL lets readers run while it writes). It checks the
// schema version but never migrates; Update fails with ErrReadOnly.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	u := url.URL{Scheme: "file", Opaque: path}
	q := url.Values{}
	q.Add("_pragma", "query_only(ON)")
	q.Add("_pragma", "busy_timeout(10000)")
	u.RawQuery = q.Encode()
	r, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var v int
	if err := r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		r.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if v != len(migrations) {
		r.Close()
		return nil, fmt.Errorf("store: %s: %w: version %d, this build reads %d", path, ErrSchema, v, len(migrations))
	}
	s := &Store{r: r, log: zerolog.Nop(), now: time.Now, reads: make(map[string]*sql.Stmt), readOnly: true,
		done: make(chan struct{}), stop: make(chan struct{}), records: make(chan struct{}, 1)}
	close(s.done)
	return s, nil
}

// Open opens (creating if needed) the database at path and migrates it to
// the current schema. path ":memory:" is not supported: readers and the
// writer need to share a file.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	s := &Store{
		log:      zerolog.Nop(),
		now:      time.Now,
		maxBatch: 256,
		ops:      make(chan *op, 1024),
		done:     make(chan struct{}),
		stop:     make(chan struct{}),
		stmts:    make(map[string]*sql.Stmt),
		records:  make(chan struct{}, 1),
		reads:    make(map[string]*sql.Stmt),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("store: %w: a file path is required", ErrConfig)
	}
	u := url.URL{Scheme: "file", Opaque: path}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	u.RawQuery = q.Encode()
	wdb, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	q.Del("_txlock")
	q.Set("_pragma", "query_only(ON)")
	q.Add("_pragma", "busy_timeout(10000)")
	u.RawQuery = q.Encode()
	r, err := sql.Open("sqlite", u.String())
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open readers %s: %w", path, err)
	}
	// Keep every reader open: database/sql would otherwise keep two idle
	// and close the rest after each burst, and each new connection costs
	// its pragmas and a fresh prepare of every hot statement.
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s.w, s.r = wdb, r
	if err := s.prepare(ctx); err != nil {
		s.w.Close()
		s.r.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

// Close stops the writer after the batches in flight and closes the
// database. Update calls after Close return ErrClosed.
func (s *Store) Close() error {
	if s.readOnly {
		return s.r.Close()
	}
	s.closeMu.Do(func() { close(s.stop) })
	<-s.done
	for _, st := range s.stmts {
		st.Close()
	}
	for _, st := range s.reads {
		st.Close()
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// Stats returns commit counters.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Update runs fn inside the next group commit and returns after that
// transaction is durable. If fn returns an error, its changes (and only its
// changes) are rolled back and the error is returned. If the commit itself
// fails, every caller of the batch gets the error: nothing they wrote exists.
//
// fn may be called more than once (when another function in its batch
// fails, the batch is run again with savepoints); it must act only through
// its Tx, and register in-memory effects with Tx.OnCommit.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case s.ops <- o:
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the caller must
	// not acknowledge something that might still commit, nor retry
	// something that did.
	select {
	case <-o.done:
		return o.err
	case <-s.done:
		select {
		case <-o.done:
			return o.err
		default:
			return ErrClosed
		}
	}
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*op, 0, s.maxBatch)
	for {
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		case <-s.stop:
			s.drainClosed()
			return
		}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// drainClosed fails what is still queued at Close.
func (s *Store) drainClosed() {
	for {
		select {
		case o := <-s.ops:
			o.err = ErrClosed
			close(o.done)
		default:
			return
		}
	}
}

func (s *Store) commit(batch []*op) {
	// Most batches have no failing op: run them without per-op
	// savepoints (two statements each). Only if one fails is the batch
	// rolled back and run again with savepoints, so that the failing op
	// alone loses its changes. Update functions therefore may run twice;
	// they must only act through their Tx.
	var hooks []func()
	err := s.attempt(batch, false, &hooks)
	if errors.Is(err, errRetryIsolated) {
		hooks = hooks[:0]
		err = s.attempt(batch, true, &hooks)
	}
	if err == nil {
		for _, h := range hooks {
			h()
		}
	}
	var ok, failed uint64
	for _, o := range batch {
		if err != nil && o.err == nil {
			o.err = err
		}
		if o.err != nil {
			failed++
		} else {
			ok++
		}
		close(o.done)
	}
	s.statsMu.Lock()
	if err == nil {
		s.stats.Commits++
	}
	s.stats.Ops += ok
	s.stats.Failed += failed
	s.statsMu.Unlock()
}

// errRetryIsolated makes commit run a batch again with savepoints.
var errRetryIsolated = errors.New("retry with savepoints")

// attempt runs batch in one transaction and commits it. Without isolation
// the first failing op aborts the attempt with errRetryIsolated (its error
// is kept for the retry to overwrite). With isolation each op runs in a
// savepoint and a failing op is rolled back alone.
func (s *Store) attempt(batch []*op, isolate bool, hooks *[]func()) error {
	sqlTx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		s.log.Error().Err(err).Msg("begin")
		return fmt.Errorf("store: begin: %w", err)
	}
	for _, o := range batch {
		o.err = nil
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		tx := &Tx{tx: sqlTx, now: s.now, s: s}
		if isolate {
			if _, err := tx.exec(qSavepoint); err != nil {
				o.err = fmt.Errorf("store: savepoint: %w", err)
				continue
			}
		}
		o.err = run(o.fn, tx)
		if o.err != nil && !isolate {
			sqlTx.Rollback()
			return errRetryIsolated
		}
		if o.err != nil {
			if _, err := tx.exec(qRollbackTo); err != nil {
				// The transaction is in an unknown state: give up on
				// the whole batch rather than commit half of an op.
				sqlTx.Rollback()
				s.log.Error().Err(err).Msg("rollback to savepoint")
				return fmt.Errorf("store: rollback: %w", err)
			}
		} else {
			*hooks = append(*hooks, tx.onCommit...)
		}
		if isolate {
			if _, err := tx.exec(qRelease); err != nil {
				sqlTx.Rollback()
				s.log.Error().Err(err).Msg("release savepoint")
				return fmt.Errorf("store: release: %w", err)
			}
		}
	}
	if err := sqlTx.Commit(); err != nil {
		s.log.Error().Err(err).Int("ops", len(batch)).Msg("commit failed")
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

func run(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: %w: panic in update: %v\n%s", ErrInternal, r, debug.Stack())
		}
	}()
	return fn(tx)
}

// Tx is one caller's view of the group transaction.
type Tx struct {
	tx       *sql.Tx
	s        *Store
	now      func() time.Time
	onCommit []func()
}

// OnCommit registers f to run after the transaction commits (not if the
// caller's function fails or the commit fails). Use it to update in-memory
// state that mirrors the database.
func (t *Tx) OnCommit(f func()) { t.onCommit = append(t.onCommit, f) }

// Now is the store's clock.
func (t *Tx) Now() time.Time { return t.now() }

// writes lists the statements the writer runs; Open prepares them all on
// the writer's connection, so that they are parsed once per process rather
// than once per call. (They cannot be prepared lazily: the writer's only
// connection is busy with the transaction by then.)
var writes []string

// w registers a writer statement; use it for package-level query constants.
func w(q string) string {
	writes = append(writes, q)
	return q
}

var (
	qSavepoint  = w("SAVEPOINT op")
	qRollbackTo = w("ROLLBACK TO op")
	qRelease    = w("RELEASE op")
)

// hotReads lists read statements run per request (a check-in, a DTLS
// request): prepared once at Open instead of parsed at every call.
var hotReads []string

// r registers a hot read statement.
func r(q string) string {
	hotReads = append(hotReads, q)
	return q
}

// collect reads every row of a query with scan and closes the rows; what
// names the query in errors.
func collect[T any](rows *sql.Rows, err error, what string, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// queryRow runs a read, prepared if it was registered with r.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st, ok := s.reads[q]; ok {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, q, args...)
}

func (s *Store) prepare(ctx context.Context) error {
	for _, q := range hotReads {
		st, err := s.r.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("store: prepare %q: %w", q, err)
		}
		s.reads[q] = st
	}
	for _, q := range writes {
		if _, ok := s.stmts[q]; ok {
			continue
		}
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("store: prepare %q: %w", q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	if st, ok := t.s.stmts[q]; ok {
		return t.tx.Stmt(st).Exec(args...)
	}
	return t.tx.Exec(q, args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row {
	if st, ok := t.s.stmts[q]; ok {
		return t.tx.Stmt(st).QueryRow(args...)
	}
	return t.tx.QueryRow(q, args...)
}
