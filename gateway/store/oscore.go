package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OSCOREContext is a device's stored OSCORE security context input
// (RFC 8613 §3.1) and mutable state.
type OSCOREContext struct {
	Device       DeviceID
	KID          []byte // the device's Sender ID, the gateway's Recipient ID
	GatewayID    []byte // the gateway's Sender ID
	MasterSecret []byte
	MasterSalt   []byte
	// Replay is the persisted replay window; HasReplay is false before the
	// context's first accepted request.
	ReplayHigh, ReplayBitmap uint64
	HasReplay                bool
	// SenderSeq is the gateway's persisted Sender Sequence Number mark
	// (Appendix B.1.1); HasSenderSeq is false before the first use.
	SenderSeq    uint64
	HasSenderSeq bool
	CreatedAt    time.Time
}

var (
	qDeleteOSCORE = w(`DELETE FROM oscore_contexts WHERE device = ?`)
	qStopSchedule = w(`UPDATE checkins SET due_at = NULL, overdue_at = NULL WHERE device = ?`)
	qInsertOSCORE = w(`INSERT INTO oscore_contexts (device, kid, gateway_id, master_secret, master_salt, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
	qReplayGet    = w(`SELECT replay_high, replay_bitmap FROM checkins WHERE device = ?`)
	qReplaySet    = w(`UPDATE checkins SET replay_high = ?, replay_bitmap = ? WHERE device = ?`)
	qReplayReset  = w(`INSERT INTO checkins (device) VALUES (?) ON CONFLICT (device) DO UPDATE SET replay_high = NULL, replay_bitmap = NULL`)
	qSenderSeqSet = w(`UPDATE oscore_contexts SET sender_seq = ? WHERE device = ?`)
	qNextKID      = w(`INSERT INTO meta (key, value) VALUES ('next_kid', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value`)
)

// PutOSCOREContext stores a device's context, replacing any previous one
// (re-provisioning starts a new context: fresh keys, fresh replay state).
func (t *Tx) PutOSCOREContext(c OSCOREContext) error {
	if _, err := t.exec(qDeleteOSCORE, c.Device[:]); err != nil {
		return fmt.Errorf("store: oscore context: %w", err)
	}
	if _, err := t.exec(qInsertOSCORE, c.Device[:], c.KID, c.GatewayID, c.MasterSecret, c.MasterSalt, t.now().Unix()); err != nil {
		return fmt.Errorf("store: oscore context: %w", err)
	}
	if _, err := t.exec(qReplayReset, c.Device[:]); err != nil {
		return fmt.Errorf("store: oscore context: %w", err)
	}
	return nil
}

// ReplayWindow reads a device's persisted replay window inside the
// transaction (so a read-merge-write is atomic).
func (t *Tx) ReplayWindow(dev DeviceID) (high, bitmap uint64, ok bool, err error) {
	var h, b sql.NullInt64
	if err := t.queryRow(qReplayGet, dev[:]).Scan(&h, &b); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, false, ErrNotFound
		}
		return 0, 0, false, fmt.Errorf("store: replay window: %w", err)
	}
	return uint64(h.Int64), uint64(b.Int64), h.Valid, nil
}

// SetReplayWindow persists a device's replay window.
func (t *Tx) SetReplayWindow(dev DeviceID, high, bitmap uint64) error {
	res, err := t.exec(qReplaySet, int64(high), int64(bitmap), dev[:])
	if err != nil {
		return fmt.Errorf("store: replay window: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: replay window: %w", ErrNotFound)
	}
	return nil
}

// SetSenderSeq persists the gateway's Sender Sequence Number mark for a
// device's context.
func (t *Tx) SetSenderSeq(dev DeviceID, n uint64) error {
	res, err := t.exec(qSenderSeqSet, int64(n), dev[:])
	if err != nil {
		return fmt.Errorf("store: sender sequence: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: sender sequence: %w", ErrNotFound)
	}
	return nil
}

// NextKID allocates a device Sender ID: the shortest big-endian encoding
// of a counter starting at 1 (one byte for the first 255 devices, two up to
// 65535, ...), never reused. The empty ID is left for the gateway.
func (t *Tx) NextKID() ([]byte, error) {
	var n int64
	err := t.queryRow(qNextKID).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("store: next kid: %w", err)
	}
	if n >= 1<<56 {
		return nil, fmt.Errorf("store: next kid: %w: identifiers exhausted", ErrConflict)
	}
	var kid []byte
	for v := n; v > 0; v >>= 8 {
		kid = append([]byte{byte(v)}, kid...)
	}
	return kid, nil
}

// DeleteOSCOREContext removes a device's context (reset, decommission,
// transfer) and stops expecting its check-ins: a device without a context
// cannot check in, so it is not overdue until it has one again.
func (t *Tx) DeleteOSCOREContext(dev DeviceID) error {
	if _, err := t.exec(qDeleteOSCORE, dev[:]); err != nil {
		return fmt.Errorf("store: delete context: %w", err)
	}
	if _, err := t.exec(qStopSchedule, dev[:]); err != nil {
		return fmt.Errorf("store: stop schedule: %w", err)
	}
	return nil
}

var qOSCOREByKID = r(oscoreQuery + ` WHERE o.kid = ?`)

// OSCOREContextByKID loads the context whose device Sender ID is kid.
func (s *Store) OSCOREContextByKID(ctx context.Context, kid []byte) (OSCOREContext, error) {
	return scanOSCORE(s.queryRow(ctx, qOSCOREByKID, kid))
}

// OSCOREContext loads a device's context.
func (s *Store) OSCOREContext(ctx context.Context, dev DeviceID) (OSCOREContext, error) {
	return scanOSCORE(s.r.QueryRowContext(ctx, oscoreQuery+` WHERE o.device = ?`, dev[:]))
}

const oscoreQuery = `SELECT o.device, o.kid, o.gateway_id, o.master_secret, o.master_salt, c.replay_high, c.replay_bitmap, o.sender_seq, o.created_at
	FROM oscore_contexts o LEFT JOIN checkins c ON c.device = o.device`

func scanOSCORE(r scanner) (OSCOREContext, error) {
	var c OSCOREContext
	var dev []byte
	var h, b, ss sql.NullInt64
	var at int64
	if err := r.Scan(&dev, &c.KID, &c.GatewayID, &c.MasterSecret, &c.MasterSalt, &h, &b, &ss, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, ErrNotFound
		}
		return c, fmt.Errorf("store: oscore context: %w", err)
	}
	copy(c.Device[:], dev)
	c.ReplayHigh, c.ReplayBitmap, c.HasReplay = uint64(h.Int64), uint64(b.Int64), h.Valid
	c.SenderSeq, c.HasSenderSeq = uint64(ss.Int64), ss.Valid
	c.CreatedAt = time.Unix(at, 0)
	return c, nil
}
