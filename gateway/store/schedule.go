package store

import (
	"context"
	"fmt"
	"time"
)

var (
	qCheckin  = w(`UPDATE checkins SET last_checkin = ?, due_at = ?, overdue_at = ?, missed = 0, replay_high = ?, replay_bitmap = ? WHERE device = ?`)
	qOverdue  = w(`UPDATE checkins SET missed = ?, overdue_at = ? WHERE device = ? AND overdue_at = ?`)
	qClass    = w(`INSERT INTO checkins (device, class) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET class = excluded.class`)
	qSchedule = w(`INSERT INTO checkins (device, due_at, overdue_at) VALUES (?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET due_at = excluded.due_at, overdue_at = excluded.overdue_at, missed = 0`)
)

// SetCheckin records an accepted check-in in one statement: the next one is
// due at due, an overdue record falls due at overdueAt (due plus grace), and
// the OSCORE replay window (which covers the check-in's request) is
// persisted with it.
func (t *Tx) SetCheckin(dev DeviceID, at, due, overdueAt time.Time, replayHigh, replayBitmap uint64) error {
	res, err := t.exec(qCheckin, at.Unix(), due.Unix(), overdueAt.Unix(), int64(replayHigh), int64(replayBitmap), dev[:])
	if err != nil {
		return fmt.Errorf("store: check-in: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: check-in: %w", ErrNotFound)
	}
	return nil
}

// SetSchedule starts (or restarts) check-in tracking without a check-in:
// used when a device gets its OSCORE context.
func (t *Tx) SetSchedule(dev DeviceID, due, overdueAt time.Time) error {
	if _, err := t.exec(qSchedule, dev[:], due.Unix(), overdueAt.Unix()); err != nil {
		return fmt.Errorf("store: schedule: %w", err)
	}
	return nil
}

// MarkOverdue records a missed window: missed becomes the new count and the
// next overdue deadline moves to next. It only applies if the deadline is
// still was (a check-in committed meanwhile wins), reporting whether it did.
func (t *Tx) MarkOverdue(dev DeviceID, was time.Time, missed int, next time.Time) (bool, error) {
	res, err := t.exec(qOverdue, missed, next.Unix(), dev[:], was.Unix())
	if err != nil {
		return false, fmt.Errorf("store: overdue: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetClass sets a device's check-in class.
func (t *Tx) SetClass(dev DeviceID, class string) error {
	_, err := t.exec(qClass, dev[:], class)
	return err
}

// Overdue lists devices whose overdue deadline is at or before now, oldest
// deadline first.
func (s *Store) Overdue(ctx context.Context, now time.Time, limit int) ([]Device, error) {
	if limit <= 0 {
		limit = 1000
	}
	// A scan of the narrow check-in table: no index on overdue_at, which
	// would cost every check-in a second random B-tree write.
	rows, err := s.r.QueryContext(ctx, deviceQuery+` WHERE c.overdue_at IS NOT NULL AND c.overdue_at <= ? ORDER BY c.overdue_at LIMIT ?`, now.Unix(), limit)
	return collect(rows, err, "overdue", scanDevice)
}

// NextOverdue returns the earliest overdue deadline (zero if none), so the
// tracker can sleep until then.
func (s *Store) NextOverdue(ctx context.Context) (time.Time, error) {
	var n *int64
	if err := s.r.QueryRowContext(ctx, `SELECT min(overdue_at) FROM checkins WHERE overdue_at IS NOT NULL`).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("store: next overdue: %w", err)
	}
	if n == nil {
		return time.Time{}, nil
	}
	return time.Unix(*n, 0), nil
}
