package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Lifecycle states, beyond onboarding.
const (
	// StateReset: credentials revoked after a factory reset; the device
	// may onboard again.
	StateReset State = "reset"
	// StateDecommissioned: credentials revoked; check-ins and onboarding
	// refused until the owner re-admits it.
	StateDecommissioned State = "decommissioned"
	// StateTransferred: the device belongs to another domain now.
	StateTransferred State = "transferred"
	// StateRepossessed: the device was repossessed by another domain (the
	// MASA's claims feed said so).
	StateRepossessed State = "repossessed"
)

// Pending is an operation waiting for a device.
type Pending struct {
	Device        DeviceID
	Action        string // "reset" or "rebootstrap"
	Reason        string
	Registrar     string
	Authorization []byte
	NewOwner      []byte
	NotAfter      time.Time
	CreatedAt     time.Time
}

// Pending actions.
const (
	ActionReset       = "reset"
	ActionRebootstrap = "rebootstrap"
)

var (
	qSetPending = w(`INSERT INTO pending (device, action, reason, registrar, authorization, new_owner, not_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET action = excluded.action, reason = excluded.reason, registrar = excluded.registrar,
		authorization = excluded.authorization, new_owner = excluded.new_owner, not_after = excluded.not_after, created_at = excluded.created_at`)
	qClearPending = w(`DELETE FROM pending WHERE device = ?`)
	qRevokeAll    = w(`UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE device = ? AND revoked_at IS NULL RETURNING serial`)
	qPendingOf    = r(pendingQuery + ` WHERE device = ?`)
)

const pendingQuery = `SELECT device, action, reason, registrar, authorization, new_owner, not_after, created_at FROM pending`

// SetPending records an operation waiting for the device (replacing any).
func (t *Tx) SetPending(p Pending) error {
	var na any
	if !p.NotAfter.IsZero() {
		na = p.NotAfter.Unix()
	}
	if _, err := t.exec(qSetPending, p.Device[:], p.Action, p.Reason, p.Registrar, p.Authorization, p.NewOwner, na, t.now().Unix()); err != nil {
		return fmt.Errorf("store: pending: %w", err)
	}
	return nil
}

// ClearPending removes the device's pending operation.
func (t *Tx) ClearPending(dev DeviceID) error {
	_, err := t.exec(qClearPending, dev[:])
	return err
}

// PendingOf returns the device's pending operation (ErrNotFound if none).
func (s *Store) PendingOf(ctx context.Context, dev DeviceID) (Pending, error) {
	return scanPending(s.queryRow(ctx, qPendingOf, dev[:]))
}

// PendingAll lists pending operations of one action ("" for all).
func (s *Store) PendingAll(ctx context.Context, action string) ([]Pending, error) {
	rows, err := s.r.QueryContext(ctx, pendingQuery+` WHERE ? = '' OR action = ? ORDER BY created_at`, action, action)
	return collect(rows, err, "pending", scanPending)
}

func scanPending(r scanner) (Pending, error) {
	var p Pending
	var dev []byte
	var na sql.NullInt64
	var at int64
	if err := r.Scan(&dev, &p.Action, &p.Reason, &p.Registrar, &p.Authorization, &p.NewOwner, &na, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, ErrNotFound
		}
		return p, fmt.Errorf("store: pending: %w", err)
	}
	copy(p.Device[:], dev)
	p.NotAfter, p.CreatedAt = unixOrZero(na), time.Unix(at, 0)
	return p, nil
}

// RevokeCertificates revokes every unrevoked certificate of the device and
// returns their serial numbers.
func (t *Tx) RevokeCertificates(dev DeviceID, reason string) ([]*big.Int, error) {
	st, ok := t.s.stmts[qRevokeAll]
	if !ok {
		return nil, fmt.Errorf("store: revoke: statement not prepared")
	}
	rows, err := t.tx.Stmt(st).Query(t.now().Unix(), reason, dev[:])
	if err != nil {
		return nil, fmt.Errorf("store: revoke: %w", err)
	}
	defer rows.Close()
	var out []*big.Int
	for rows.Next() {
		var hex string
		if err := rows.Scan(&hex); err != nil {
			return nil, err
		}
		n, ok := new(big.Int).SetString(hex, 16)
		if !ok {
			return nil, fmt.Errorf("store: revoke: bad serial %q", hex)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Revoked is a revoked certificate, for the CRL.
type Revoked struct {
	Serial *big.Int
	At     time.Time
	Reason string
}

// RevokedCertificates lists every revoked certificate.
func (s *Store) RevokedCertificates(ctx context.Context) ([]Revoked, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT serial, revoked_at, coalesce(revoke_reason, '') FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at`)
	if err != nil {
		return nil, fmt.Errorf("store: revoked: %w", err)
	}
	defer rows.Close()
	var out []Revoked
	for rows.Next() {
		var hex string
		var at int64
		var rv Revoked
		if err := rows.Scan(&hex, &at, &rv.Reason); err != nil {
			return nil, err
		}
		n, ok := new(big.Int).SetString(hex, 16)
		if !ok {
			return nil, fmt.Errorf("store: revoked: bad serial %q", hex)
		}
		rv.Serial, rv.At = n, time.Unix(at, 0)
		out = append(out, rv)
	}
	return out, rows.Err()
}

// ExpectedDevice is a registered expected device, as the registrar sees it
// at enrollment.
type ExpectedDevice struct {
	Expected
	Authorization []byte
	Repossession  []byte
	NoticeUntil   time.Time
}

// AddExpectedTransfer registers an incoming device with the transfer
// authorisation or repossession order that will make its enrollment a
// transfer in or a repossession.
func (t *Tx) AddExpectedTransfer(e Expected, authorization, repossession []byte, noticeUntil time.Time) error {
	var serial, hash any
	if e.Serial != "" {
		serial = e.Serial
	}
	if len(e.IDevIDSHA256) != 0 {
		hash = e.IDevIDSHA256
	}
	if serial == nil && hash == nil {
		return fmt.Errorf("store: expected device: %w: serial or IDevID hash required", ErrConflict)
	}
	_, err := t.exec(qExpectTransfer, serial, hash, e.Note, t.now().Unix(), authorization, repossession, nullUnix(noticeUntil))
	if err != nil {
		return fmt.Errorf("store: expected device: %w", err)
	}
	return nil
}

var (
	qExpectTransfer = w(`INSERT INTO expected (serial, idevid_sha256, note, added_at, authorization, repossession, notice_until) VALUES (?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (serial) DO UPDATE SET authorization = coalesce(excluded.authorization, authorization),
	repossession = coalesce(excluded.repossession, repossession), notice_until = coalesce(excluded.notice_until, notice_until), note = excluded.note`)
	qExpectConsumed = w(`UPDATE expected SET authorization = NULL, repossession = NULL, notice_until = NULL WHERE serial = ?`)
)

// ConsumeExpectedTransfer forgets the authorisation or order of an expected
// device once its enrollment recorded it.
func (t *Tx) ConsumeExpectedTransfer(serial string) error {
	_, err := t.exec(qExpectConsumed, serial)
	return err
}

// ExpectedFor returns the registration matching a device (ErrNotFound if
// none).
func (s *Store) ExpectedFor(ctx context.Context, serial string, idevidSHA256 []byte) (ExpectedDevice, error) {
	var e ExpectedDevice
	var sn sql.NullString
	var nu sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT serial, idevid_sha256, note, authorization, repossession, notice_until FROM expected
		WHERE serial = ? OR idevid_sha256 = ? ORDER BY id DESC LIMIT 1`, serial, idevidSHA256).
		Scan(&sn, &e.IDevIDSHA256, &e.Note, &e.Authorization, &e.Repossession, &nu)
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("store: expected: %w", err)
	}
	e.Serial, e.NoticeUntil = sn.String, unixOrZero(nu)
	return e, nil
}
