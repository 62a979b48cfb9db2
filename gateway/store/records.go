package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Record is a signed record as stored: the COSE_Sign1 bytes and the fields
// the store indexes. The store never interprets or alters the bytes.
type Record struct {
	Seq    uint64
	Device DeviceID
	Serial string
	Type   string
	Time   time.Time
	ID     [32]byte // SHA-256 of COSE
	COSE   []byte
}

var (
	qInsertRecord = w(`INSERT INTO records (seq, device, serial, type, time, id, cose) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	qInsertOutbox = w(`INSERT INTO outbox (seq) VALUES (?)`)
	qHeadOf       = w(`SELECT id, seq FROM records WHERE device = ? ORDER BY seq DESC LIMIT 1`)
	qHeadRead     = r(`SELECT id, seq FROM records WHERE device = ? ORDER BY seq DESC LIMIT 1`)
)

// AppendRecord stores r, makes it the device's chain head and queues it for
// upstream delivery, all in the caller's transaction. prev is the id of the
// device's previous record (nil for its first): if the stored head differs,
// the append fails with ErrConflict, so the chain can never fork.
func (t *Tx) AppendRecord(r Record, prev []byte) error {
	var head []byte
	var headSeq int64
	err := t.queryRow(qHeadOf, r.Device[:]).Scan(&head, &headSeq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if prev != nil {
			return fmt.Errorf("store: record %d: %w: device has no chain yet", r.Seq, ErrConflict)
		}
	case err != nil:
		return fmt.Errorf("store: record %d: %w", r.Seq, err)
	case prev == nil:
		return fmt.Errorf("store: record %d: %w: device already has a chain", r.Seq, ErrConflict)
	case string(prev) != string(head):
		return fmt.Errorf("store: record %d: %w: prev is not the device's chain head", r.Seq, ErrConflict)
	case uint64(headSeq) >= r.Seq:
		return fmt.Errorf("store: record %d: %w: sequence does not increase (head %d)", r.Seq, ErrConflict, headSeq)
	}
	if _, err := t.exec(qInsertRecord, int64(r.Seq), r.Device[:], r.Serial, r.Type, r.Time.Unix(), r.ID[:], r.COSE); err != nil {
		return fmt.Errorf("store: record %d: %w", r.Seq, err)
	}
	if _, err := t.exec(qInsertOutbox, int64(r.Seq)); err != nil {
		return fmt.Errorf("store: outbox %d: %w", r.Seq, err)
	}
	t.OnCommit(t.s.notifyRecords)
	return nil
}

// ChainHead returns the id and sequence number of a device's latest record;
// ok is false when it has none.
func (s *Store) ChainHead(ctx context.Context, dev DeviceID) (head []byte, seq uint64, ok bool, err error) {
	var n int64
	err = s.queryRow(ctx, qHeadRead, dev[:]).Scan(&head, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("store: chain head: %w", err)
	}
	return head, uint64(n), true, nil
}

// LastSeq is the highest sequence number ever committed (0 if none): the
// newest record is never pruned, and a future pruning of history must
// record its high mark in meta('last_seq'), which this also reads.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	var n sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT max(coalesce((SELECT value FROM meta WHERE key = 'last_seq'), 0), coalesce((SELECT max(seq) FROM records), 0))`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: last seq: %w", err)
	}
	return uint64(n.Int64), nil
}

// RecordFilter selects records.
type RecordFilter struct {
	Device   *DeviceID // nil: all devices
	AfterSeq uint64
	Limit    int // 0: 1000
}

// Records lists records in sequence order.
func (s *Store) Records(ctx context.Context, f RecordFilter) ([]Record, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var dev []byte
	if f.Device != nil {
		dev = f.Device[:]
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, device, serial, type, time, id, cose FROM records
		WHERE seq > ? AND (? IS NULL OR device = ?) ORDER BY seq LIMIT ?`, int64(f.AfterSeq), dev, dev, f.Limit)
	return collect(rows, err, "records", scanRecord)
}

// CountRecords counts records by type.
func (s *Store) CountRecords(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT type, count(*) FROM records GROUP BY type`)
	if err != nil {
		return nil, fmt.Errorf("store: count records: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, rows.Err()
}

func scanRecord(r scanner) (Record, error) {
	var rec Record
	var seq, at int64
	var dev, id []byte
	if err := r.Scan(&seq, &dev, &rec.Serial, &rec.Type, &at, &id, &rec.COSE); err != nil {
		return rec, fmt.Errorf("store: record: %w", err)
	}
	rec.Seq, rec.Time = uint64(seq), time.Unix(at, 0)
	copy(rec.Device[:], dev)
	copy(rec.ID[:], id)
	return rec, nil
}
