package store

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"
)

var (
	qInsertPVR       = w(`INSERT INTO voucher_requests (device, kind, nonce, cose, created_at) VALUES (?, 'pvr', ?, ?, ?)`)
	qInsertRVR       = w(`INSERT INTO voucher_requests (device, kind, nonce, cose, created_at) VALUES (?, 'rvr', ?, ?, ?)`)
	qInsertVoucher   = w(`INSERT INTO vouchers (device, pvr, rvr, nonce, masa_url, cose, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	qInsertTelemetry = w(`INSERT INTO telemetry (device, kind, status, reason, body, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
	qInsertCert      = w(`INSERT INTO certificates (serial, device, op, subject, der, not_before, not_after, issued_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	qInsertExpected = w(`INSERT INTO expected (serial, idevid_sha256, note, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`)
)

// VoucherExchange is one completed registrar round trip: the pledge's
// voucher-request, the registrar's voucher-request to the MASA and the
// voucher the MASA returned, all as the signed bytes that crossed the wire.
type VoucherExchange struct {
	Device  DeviceID
	Nonce   []byte
	PVR     []byte
	RVR     []byte
	Voucher []byte
	MASAURL string
	At      time.Time
}

// AddVoucherExchange records an exchange.
func (t *Tx) AddVoucherExchange(x VoucherExchange) error {
	now := t.now().Unix()
	res, err := t.exec(qInsertPVR,
		x.Device[:], x.Nonce, x.PVR, now)
	if err != nil {
		return fmt.Errorf("store: pvr: %w", err)
	}
	pid, _ := res.LastInsertId()
	res, err = t.exec(qInsertRVR,
		x.Device[:], x.Nonce, x.RVR, now)
	if err != nil {
		return fmt.Errorf("store: rvr: %w", err)
	}
	rid, _ := res.LastInsertId()
	if _, err := t.exec(qInsertVoucher,
		x.Device[:], pid, rid, x.Nonce, x.MASAURL, x.Voucher, now); err != nil {
		return fmt.Errorf("store: voucher: %w", err)
	}
	return nil
}

// qLatestVoucher is read at every enrollment (the enroll record names the
// voucher), so it is prepared once.
var qLatestVoucher = r(`SELECT v.nonce, p.cose, r.cose, v.cose, v.masa_url, v.created_at
	FROM vouchers v JOIN voucher_requests r ON r.id = v.rvr JOIN voucher_requests p ON p.id = v.pvr
	WHERE v.device = ? ORDER BY v.id DESC LIMIT 1`)

// LatestVoucher returns the most recent exchange of a device.
func (s *Store) LatestVoucher(ctx context.Context, id DeviceID) (VoucherExchange, error) {
	var x VoucherExchange
	var at int64
	err := s.queryRow(ctx, qLatestVoucher, id[:]).Scan(&x.Nonce, &x.PVR, &x.RVR, &x.Voucher, &x.MASAURL, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return x, ErrNotFound
	}
	if err != nil {
		return x, fmt.Errorf("store: latest voucher: %w", err)
	}
	x.Device, x.At = id, time.Unix(at, 0)
	return x, nil
}

// TelemetryKind names a BRSKI status telemetry resource.
type TelemetryKind string

// Telemetry kinds.
const (
	VoucherStatus TelemetryKind = "vs"
	EnrollStatus  TelemetryKind = "es"
)

// Telemetry is one /vs or /es report.
type Telemetry struct {
	Device DeviceID
	Kind   TelemetryKind
	Status bool
	Reason string
	Body   []byte // CBOR as received
	At     time.Time
}

// AddTelemetry records a status report.
func (t *Tx) AddTelemetry(m Telemetry) error {
	if _, err := t.exec(qInsertTelemetry,
		m.Device[:], string(m.Kind), m.Status, m.Reason, m.Body, t.now().Unix()); err != nil {
		return fmt.Errorf("store: telemetry: %w", err)
	}
	return nil
}

// Telemetry lists a device's reports, oldest first.
func (s *Store) Telemetry(ctx context.Context, id DeviceID) ([]Telemetry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, status, reason, body, created_at FROM telemetry WHERE device = ? ORDER BY id`, id[:])
	if err != nil {
		return nil, fmt.Errorf("store: telemetry: %w", err)
	}
	defer rows.Close()
	var out []Telemetry
	for rows.Next() {
		m := Telemetry{Device: id}
		var kind string
		var at int64
		if err := rows.Scan(&kind, &m.Status, &m.Reason, &m.Body, &at); err != nil {
			return nil, err
		}
		m.Kind, m.At = TelemetryKind(kind), time.Unix(at, 0)
		out = append(out, m)
	}
	return out, rows.Err()
}

// CertOp says why a certificate was issued.
type CertOp string

// Certificate operations.
const (
	OpEnroll   CertOp = "enroll"
	OpReenroll CertOp = "reenroll"
)

// Certificate is an issued LDevID.
type Certificate struct {
	Device    DeviceID
	Op        CertOp
	Cert      *x509.Certificate
	IssuedAt  time.Time
	RevokedAt time.Time // zero: not revoked
}

// AddCertificate records an issued certificate.
func (t *Tx) AddCertificate(id DeviceID, op CertOp, c *x509.Certificate) error {
	if _, err := t.exec(qInsertCert,
		serialHex(c.SerialNumber), id[:], string(op), c.Subject.String(), c.Raw, c.NotBefore.Unix(), c.NotAfter.Unix(), t.now().Unix()); err != nil {
		return fmt.Errorf("store: certificate: %w", err)
	}
	return nil
}

// Certificates lists a device's certificates, oldest first.
func (s *Store) Certificates(ctx context.Context, id DeviceID) ([]Certificate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT op, der, issued_at, revoked_at FROM certificates WHERE device = ? ORDER BY issued_at, serial`, id[:])
	if err != nil {
		return nil, fmt.Errorf("store: certificates: %w", err)
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		c := Certificate{Device: id}
		var op string
		var der []byte
		var at int64
		var rev sql.NullInt64
		if err := rows.Scan(&op, &der, &at, &rev); err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("store: certificate: %w", err)
		}
		c.Op, c.Cert, c.IssuedAt = CertOp(op), cert, time.Unix(at, 0)
		if rev.Valid {
			c.RevokedAt = time.Unix(rev.Int64, 0)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CertificateStatus reports whether the certificate with this serial was
// issued here and whether it is revoked.
func (s *Store) CertificateStatus(ctx context.Context, serial *big.Int) (dev DeviceID, revoked bool, err error) {
	var id []byte
	var rev sql.NullInt64
	err = s.r.QueryRowContext(ctx, `SELECT device, revoked_at FROM certificates WHERE serial = ?`, serialHex(serial)).Scan(&id, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return dev, false, ErrNotFound
	}
	if err != nil {
		return dev, false, fmt.Errorf("store: certificate status: %w", err)
	}
	copy(dev[:], id)
	return dev, rev.Valid, nil
}

func serialHex(n *big.Int) string { return fmt.Sprintf("%x", n) }

// Expected is a device the owner registered in advance (registrar policy
// "expected"): by serial number, by the SHA-256 of its IDevID, or both.
type Expected struct {
	Serial       string
	IDevIDSHA256 []byte
	Note         string
}

// AddExpected registers a device.
func (t *Tx) AddExpected(e Expected) error {
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
	if _, err := t.exec(qInsertExpected, serial, hash, e.Note, t.now().Unix()); err != nil {
		return fmt.Errorf("store: expected device: %w", err)
	}
	return nil
}

// IsExpected reports whether a device with this serial or IDevID was
// registered.
func (s *Store) IsExpected(ctx context.Context, serial string, idevid []byte) (bool, error) {
	h := sha256.Sum256(idevid)
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM expected WHERE serial = ? OR idevid_sha256 = ?`, serial, h[:]).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: expected: %w", err)
	}
	return n > 0, nil
}
