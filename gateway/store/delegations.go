package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Delegation is a time-bounded copy of one device's records to another
// domain's upstream sink, with read access for the holder of a token.
type Delegation struct {
	ID        string
	Device    DeviceID
	Sink      string
	Config    string // the sink configuration, JSON
	FromPos   uint64
	EndPos    uint64 // 0 while active
	Until     time.Time
	EndedAt   time.Time // zero while active
	TokenHash []byte
	CreatedAt time.Time
}

var (
	qInsertDelegation = w(`INSERT INTO delegations (id, device, sink, config, from_pos, until, token_hash, created_at)
		VALUES (?, ?, ?, ?, coalesce((SELECT max(pos) FROM outbox), (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), ?, ?, ?)`)
	// The end position is the one the next outbox row gets (AUTOINCREMENT:
	// the sequence plus one): the caller's "delegate end" record, appended
	// right after in the same transaction, is the last one delegated.
	qEndDelegation = w(`UPDATE delegations SET ended_at = ?, end_pos = coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0) + 1
		WHERE id = ? AND ended_at IS NULL`)
	qDelegationStart = w(`INSERT INTO cursors (sink, pos) SELECT sink, from_pos FROM delegations WHERE id = ?
		ON CONFLICT (sink) DO UPDATE SET pos = excluded.pos`)
)

const delegationQuery = `SELECT id, device, sink, config, from_pos, end_pos, until, ended_at, token_hash, created_at FROM delegations`

// AddDelegation stores a delegation starting after every record committed
// so far, and starts its sink's cursor there.
func (t *Tx) AddDelegation(d Delegation) error {
	if _, err := t.exec(qInsertDelegation, d.ID, d.Device[:], d.Sink, d.Config, d.Until.Unix(), d.TokenHash, t.now().Unix()); err != nil {
		return fmt.Errorf("store: delegation: %w", err)
	}
	if _, err := t.exec(qDelegationStart, d.ID); err != nil {
		return fmt.Errorf("store: delegation cursor: %w", err)
	}
	return nil
}

// EndDelegation ends a delegation: the next record appended in this
// transaction (the caller's "delegate end" record) is the last one
// delegated. It reports whether the delegation was still active.
func (t *Tx) EndDelegation(id string) (bool, error) {
	res, err := t.exec(qEndDelegation, t.now().Unix(), id)
	if err != nil {
		return false, fmt.Errorf("store: end delegation: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Delegations lists delegations: of one device (nil: all), active only or
// all.
func (s *Store) Delegations(ctx context.Context, dev *DeviceID, activeOnly bool) ([]Delegation, error) {
	var d []byte
	if dev != nil {
		d = dev[:]
	}
	rows, err := s.r.QueryContext(ctx, delegationQuery+` WHERE (? IS NULL OR device = ?) AND (? = 0 OR ended_at IS NULL) ORDER BY created_at`, d, d, activeOnly)
	return collect(rows, err, "delegations", scanDelegation)
}

// DelegationsUndelivered lists the delegations still active, or ended but
// not yet delivered to their end position: those that still need a
// deliverer and hold back outbox pruning.
func (s *Store) DelegationsUndelivered(ctx context.Context) ([]Delegation, error) {
	rows, err := s.r.QueryContext(ctx, delegationQuery+` d WHERE d.ended_at IS NULL
		OR d.end_pos > coalesce((SELECT pos FROM cursors c WHERE c.sink = d.sink), 0) ORDER BY d.created_at`)
	return collect(rows, err, "delegations", scanDelegation)
}

// DelegationByToken finds an active delegation by the SHA-256 of its token.
func (s *Store) DelegationByToken(ctx context.Context, hash []byte) ([]Delegation, error) {
	rows, err := s.r.QueryContext(ctx, delegationQuery+` WHERE token_hash = ? AND ended_at IS NULL`, hash)
	return collect(rows, err, "delegation", scanDelegation)
}

// Delegation returns one delegation.
func (s *Store) Delegation(ctx context.Context, id string) (Delegation, error) {
	return scanDelegation(s.r.QueryRowContext(ctx, delegationQuery+` WHERE id = ?`, id))
}

func scanDelegation(r scanner) (Delegation, error) {
	var d Delegation
	var dev []byte
	var from int64
	var end, ended sql.NullInt64
	var until, at int64
	if err := r.Scan(&d.ID, &dev, &d.Sink, &d.Config, &from, &end, &until, &ended, &d.TokenHash, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return d, ErrNotFound
		}
		return d, fmt.Errorf("store: delegation: %w", err)
	}
	copy(d.Device[:], dev)
	d.FromPos, d.EndPos = uint64(from), uint64(end.Int64)
	d.Until, d.EndedAt, d.CreatedAt = time.Unix(until, 0), unixOrZero(ended), time.Unix(at, 0)
	return d, nil
}

// OutboxNextFor is OutboxNext restricted to one device's records with
// positions in (cursor, endPos] (endPos 0: no end): what a delegate sink
// receives.
func (s *Store) OutboxNextFor(ctx context.Context, sink string, dev DeviceID, endPos uint64, limit int) ([]OutboxEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT o.pos, r.seq, r.device, r.serial, r.type, r.time, r.id, r.cose
		FROM outbox o JOIN records r ON r.seq = o.seq
		WHERE o.pos > coalesce((SELECT pos FROM cursors WHERE sink = ?), 0) AND (? = 0 OR o.pos <= ?) AND r.device = ?
		  AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.sink = ? AND p.seq = o.seq)
		ORDER BY o.pos LIMIT ?`, sink, int64(endPos), int64(endPos), dev[:], sink, limit)
	return scanOutbox(rows, err)
}

// OutboxHead is the highest outbox position ever assigned (0 if none).
func (s *Store) OutboxHead(ctx context.Context) (uint64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT coalesce((SELECT max(pos) FROM outbox), (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)`).Scan(&n)
	return uint64(n), err
}

// OutboxCursor is a sink's cursor (0 if it has none).
func (s *Store) OutboxCursor(ctx context.Context, sink string) (uint64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT coalesce((SELECT pos FROM cursors WHERE sink = ?), 0)`, sink).Scan(&n)
	return uint64(n), err
}

// OutboxBacklogFor counts what a delegate sink still has to deliver.
func (s *Store) OutboxBacklogFor(ctx context.Context, sink string, dev DeviceID, endPos uint64) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT count(*), min(r.time) FROM outbox o JOIN records r ON r.seq = o.seq
		WHERE o.pos > coalesce((SELECT pos FROM cursors WHERE sink = ?), 0) AND (? = 0 OR o.pos <= ?) AND r.device = ?
		  AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.sink = ? AND p.seq = o.seq)`, sink, int64(endPos), int64(endPos), dev[:], sink).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: backlog: %w", err)
	}
	return n, unixOrZero(oldest), nil
}
