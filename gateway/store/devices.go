package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DeviceID is SHA-256 of a device's IDevID certificate (DER).
type DeviceID [32]byte

// State is where a device is in its life at this gateway.
type State string

// Onboarding states, in the order a successful cBRSKI run passes them.
const (
	// StateVoucher: the registrar obtained a voucher and sent it on.
	StateVoucher State = "voucher"
	// StateVoucherAccepted: the pledge reported /vs status true.
	StateVoucherAccepted State = "voucher-accepted"
	// StateVoucherRejected: the pledge reported /vs status false.
	StateVoucherRejected State = "voucher-rejected"
	// StateEnrolled: an LDevID was issued (/sen).
	StateEnrolled State = "enrolled"
	// StateActive: the pledge reported /es status true.
	StateActive State = "active"
	// StateEnrollFailed: the pledge reported /es status false.
	StateEnrollFailed State = "enroll-failed"
)

// Device is a device known to the gateway.
type Device struct {
	ID        DeviceID
	Serial    string
	IDevID    []byte // DER
	State     State
	CreatedAt time.Time
	UpdatedAt time.Time
	// Class selects the check-in interval and grace (gateway.yaml).
	Class string
	// LastCheckin is the last accepted check-in (zero: never).
	LastCheckin time.Time
	// DueAt is when the next check-in is due (zero: not scheduled).
	DueAt time.Time
	// OverdueAt is when the next overdue record is due (due + grace, then
	// one interval per missed window); zero: not tracked.
	OverdueAt time.Time
	// Missed counts windows missed since the last check-in.
	Missed int
	// Pending is the operation waiting for the device ("reset",
	// "rebootstrap" or empty) and, for a rebootstrap, the new owner's
	// registrar hint.
	Pending          string
	PendingRegistrar string
}

// PutDevice inserts d, or updates the state of an existing device with the
// same id. The serial and IDevID of a known device never change.
func (t *Tx) PutDevice(d Device) error {
	now := t.now().Unix()
	_, err := t.exec(qPutDevice,
		d.ID[:], d.Serial, d.IDevID, string(d.State), now, now)
	if err != nil {
		return fmt.Errorf("store: put device: %w", err)
	}
	return nil
}

// SetState moves a known device to state.
func (t *Tx) SetState(id DeviceID, s State) error {
	res, err := t.exec(qSetState, string(s), t.now().Unix(), id[:])
	if err != nil {
		return fmt.Errorf("store: set state: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: set state %x: %w", id[:4], ErrNotFound)
	}
	return nil
}

// Device returns one device as the writer sees it inside the transaction.
func (t *Tx) Device(id DeviceID) (Device, error) {
	return scanDevice(t.queryRow(qDeviceWriter, id[:]))
}

// Device returns one device.
func (s *Store) Device(ctx context.Context, id DeviceID) (Device, error) {
	return scanDevice(s.queryRow(ctx, qDevice, id[:]))
}

// DeviceFilter selects devices in Devices.
type DeviceFilter struct {
	State  State  // empty: any
	Serial string // empty: any
	Limit  int    // 0: 1000
}

// Devices lists devices, most recently updated first.
func (s *Store) Devices(ctx context.Context, f DeviceFilter) ([]Device, error) {
	q := deviceQuery + ` WHERE (? = '' OR d.state = ?) AND (? = '' OR d.serial = ?) ORDER BY d.updated_at DESC, d.id LIMIT ?`
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, q, string(f.State), string(f.State), f.Serial, f.Serial, f.Limit)
	return collect(rows, err, "devices", scanDevice)
}

// CountByState returns how many devices are in each state.
func (s *Store) CountByState(ctx context.Context) (map[State]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, count(*) FROM devices GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: count: %w", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[State(st)] = n
	}
	return out, rows.Err()
}

var (
	qPutDevice = w(`INSERT INTO devices (id, serial, idevid, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`)
	qSetState     = w(`UPDATE devices SET state = ?, updated_at = ? WHERE id = ?`)
	qDeviceWriter = w(deviceQuery + ` WHERE d.id = ?`)
	qDevice       = r(deviceQuery + ` WHERE d.id = ?`)
)

const deviceQuery = `SELECT d.id, d.serial, d.idevid, d.state, d.created_at, d.updated_at,
	coalesce(c.class, 'default'), c.last_checkin, c.due_at, c.overdue_at, coalesce(c.missed, 0),
	coalesce(p.action, ''), coalesce(p.registrar, '')
	FROM devices d LEFT JOIN checkins c ON c.device = d.id LEFT JOIN pending p ON p.device = d.id`

type scanner interface{ Scan(...any) error }

func scanDevice(r scanner) (Device, error) {
	var d Device
	var id []byte
	var st string
	var c, u int64
	var last, due, over sql.NullInt64
	if err := r.Scan(&id, &d.Serial, &d.IDevID, &st, &c, &u, &d.Class, &last, &due, &over, &d.Missed, &d.Pending, &d.PendingRegistrar); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Device{}, ErrNotFound
		}
		return Device{}, fmt.Errorf("store: device: %w", err)
	}
	copy(d.ID[:], id)
	d.State = State(st)
	d.CreatedAt, d.UpdatedAt = time.Unix(c, 0), time.Unix(u, 0)
	d.LastCheckin, d.DueAt, d.OverdueAt = unixOrZero(last), unixOrZero(due), unixOrZero(over)
	return d, nil
}

func unixOrZero(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(n.Int64, 0)
}

func nullUnix(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}
