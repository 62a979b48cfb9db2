package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OutboxEntry is a record queued for delivery, with its position in commit
// order.
type OutboxEntry struct {
	Pos uint64
	Record
}

// notifyRecords signals (coalesced) every subscriber after a commit that
// appended records.
func (s *Store) notifyRecords() {
	select {
	case s.records <- struct{}{}:
	default:
	}
	s.subMu.Lock()
	for c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	s.subMu.Unlock()
}

// SubscribeRecords returns a channel signalled (coalesced) after every
// commit that appended records, and a function that ends the subscription.
func (s *Store) SubscribeRecords() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	s.subMu.Lock()
	if s.subs == nil {
		s.subs = map[chan struct{}]struct{}{}
	}
	s.subs[c] = struct{}{}
	s.subMu.Unlock()
	return c, func() {
		s.subMu.Lock()
		delete(s.subs, c)
		s.subMu.Unlock()
	}
}

// RecordsCommitted receives a value after commits that appended records;
// signals are coalesced, so a receiver must read until empty.
func (s *Store) RecordsCommitted() <-chan struct{} { return s.records }

// OutboxNext returns up to limit records after sink's cursor in commit
// order, skipping records parked for sink.
func (s *Store) OutboxNext(ctx context.Context, sink string, limit int) ([]OutboxEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT o.pos, r.seq, r.device, r.serial, r.type, r.time, r.id, r.cose
		FROM outbox o JOIN records r ON r.seq = o.seq
		WHERE o.pos > coalesce((SELECT pos FROM cursors WHERE sink = ?), 0)
		  AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.sink = ? AND p.seq = o.seq)
		ORDER BY o.pos LIMIT ?`, sink, sink, limit)
	return scanOutbox(rows, err)
}

// scanOutbox reads the rows of an outbox query (pos, seq, device, serial,
// type, time, id, cose).
func scanOutbox(rows *sql.Rows, err error) ([]OutboxEntry, error) {
	return collect(rows, err, "outbox", func(r scanner) (OutboxEntry, error) {
		var e OutboxEntry
		var pos, seq, at int64
		var dev, id []byte
		if err := r.Scan(&pos, &seq, &dev, &e.Serial, &e.Type, &at, &id, &e.COSE); err != nil {
			return e, fmt.Errorf("store: outbox: %w", err)
		}
		e.Pos, e.Seq, e.Time = uint64(pos), uint64(seq), time.Unix(at, 0)
		copy(e.Device[:], dev)
		copy(e.ID[:], id)
		return e, nil
	})
}

var (
	qAdvance   = w(`INSERT INTO cursors (sink, pos) VALUES (?, ?) ON CONFLICT (sink) DO UPDATE SET pos = max(pos, excluded.pos)`)
	qPark      = w(`INSERT INTO parked (sink, seq, reason, at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET reason = excluded.reason`)
	qCursorPos = w(`SELECT pos FROM cursors WHERE sink = ?`)
)

// OutboxAck moves sink's cursor to outbox position pos (everything at or
// before it in commit order is delivered or parked). Cursors never move
// back.
func (s *Store) OutboxAck(ctx context.Context, sink string, pos uint64) error {
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(qAdvance, sink, int64(pos))
		return err
	})
}

// OutboxPark records that seq will not be delivered to sink, with a reason.
func (s *Store) OutboxPark(ctx context.Context, sink string, seq uint64, reason string) error {
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(qPark, sink, int64(seq), reason, tx.now().Unix())
		return err
	})
}

// Parked is a record a sink refused permanently.
type Parked struct {
	Sink   string
	Seq    uint64
	Reason string
	At     time.Time
}

// ParkedRecords lists parked records (all sinks if sink is empty).
func (s *Store) ParkedRecords(ctx context.Context, sink string, limit int) ([]Parked, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT sink, seq, reason, at FROM parked WHERE ? = '' OR sink = ? ORDER BY at, seq LIMIT ?`, sink, sink, limit)
	if err != nil {
		return nil, fmt.Errorf("store: parked: %w", err)
	}
	defer rows.Close()
	var out []Parked
	for rows.Next() {
		var p Parked
		var seq, at int64
		if err := rows.Scan(&p.Sink, &seq, &p.Reason, &at); err != nil {
			return nil, err
		}
		p.Seq, p.At = uint64(seq), time.Unix(at, 0)
		out = append(out, p)
	}
	return out, rows.Err()
}

// OutboxBacklog returns how many records wait for sink (parked ones
// excluded) and the time of the oldest.
func (s *Store) OutboxBacklog(ctx context.Context, sink string) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT count(*), min(r.time) FROM outbox o JOIN records r ON r.seq = o.seq
		WHERE o.pos > coalesce((SELECT pos FROM cursors WHERE sink = ?), 0)
		  AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.sink = ? AND p.seq = o.seq)`, sink, sink).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: backlog: %w", err)
	}
	return n, unixOrZero(oldest), nil
}

// Retention bounds the outbox.
type Retention struct {
	// MaxRecords bounds queued rows (0: no bound).
	MaxRecords int
	// MaxAge bounds how long a record waits (0: no bound).
	MaxAge time.Duration
}

// PruneResult says what PruneOutbox removed.
type PruneResult struct {
	// Delivered rows every sink had passed.
	Delivered int
	// Dropped counts deliveries lost to the bounds: records a sink had
	// neither delivered nor parked, summed over sinks. Never silent: the
	// caller logs and counts them.
	Dropped int
	// DroppedBySink counts, per sink, dropped records it had not passed.
	DroppedBySink map[string]int
}

// PruneOutbox removes outbox rows every sink in sinks has passed, then
// enforces r by dropping the oldest rows even if undelivered, and moves the
// cursors of sinks that had not reached them past them. The records
// themselves (the device history) stay.
func (s *Store) PruneOutbox(ctx context.Context, sinks []string, r Retention) (PruneResult, error) {
	res := PruneResult{DroppedBySink: map[string]int{}}
	err := s.Update(ctx, func(tx *Tx) error {
		res = PruneResult{DroppedBySink: map[string]int{}}
		// Everything every sink has passed.
		minPos := int64(-1)
		for _, sink := range sinks {
			var pos int64
			err := tx.queryRow(qCursorPos, sink).Scan(&pos)
			if errors.Is(err, sql.ErrNoRows) {
				pos = 0
			} else if err != nil {
				return err
			}
			if minPos < 0 || pos < minPos {
				minPos = pos
			}
		}
		if minPos > 0 {
			n, err := tx.exec(`DELETE FROM outbox WHERE pos <= ?`, minPos)
			if err != nil {
				return err
			}
			k, _ := n.RowsAffected()
			res.Delivered = int(k)
		}
		// The bounds: find the position up to which rows must go.
		var cut int64
		if r.MaxRecords > 0 {
			if err := tx.queryRow(`SELECT coalesce((SELECT pos FROM outbox ORDER BY pos DESC LIMIT 1 OFFSET ?), 0)`, r.MaxRecords).Scan(&cut); err != nil {
				return err
			}
		}
		if r.MaxAge > 0 {
			var agePos int64
			limit := tx.now().Add(-r.MaxAge).Unix()
			if err := tx.queryRow(`SELECT coalesce(max(o.pos), 0) FROM outbox o JOIN records r ON r.seq = o.seq WHERE r.time < ?`, limit).Scan(&agePos); err != nil {
				return err
			}
			cut = max(cut, agePos)
		}
		if cut == 0 {
			return nil
		}
		for _, sink := range sinks {
			var n int
			if err := tx.queryRow(`SELECT count(*) FROM outbox o WHERE o.pos <= ? AND o.pos > coalesce((SELECT pos FROM cursors WHERE sink = ?), 0)
				AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.sink = ? AND p.seq = o.seq)`, cut, sink, sink).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				res.DroppedBySink[sink] = n
				res.Dropped += n
				if _, err := tx.exec(qAdvance, sink, cut); err != nil {
					return err
				}
			}
		}
		_, err := tx.exec(`DELETE FROM outbox WHERE pos <= ?`, cut)
		return err
	})
	return res, err
}

// OutboxCursorCount is how many outbox records sink's cursor has passed
// (delivered or parked), pruned ones included.
func (s *Store) OutboxCursorCount(ctx context.Context, sink string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM records r
		WHERE r.seq IN (SELECT seq FROM outbox WHERE pos <= coalesce((SELECT pos FROM cursors WHERE sink = ?), 0))
		   OR NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = r.seq)`, sink).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: cursor count: %w", err)
	}
	return n, nil
}
