package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] brings the schema from version i to i+1. They only ever
// append: a released migration is never edited.
var migrations = []string{
	// 1: onboarding (cBRSKI, EST-coaps).
	`
CREATE TABLE devices (
	id         BLOB PRIMARY KEY CHECK (length(id) = 32), -- SHA-256 of the IDevID DER
	serial     TEXT NOT NULL,                            -- from the IDevID subject
	idevid     BLOB NOT NULL,                            -- DER
	state      TEXT NOT NULL,
	created_at INTEGER NOT NULL,                         -- unix seconds
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX devices_serial ON devices (serial);
CREATE INDEX devices_state ON devices (state);

CREATE TABLE voucher_requests (
	id         INTEGER PRIMARY KEY,
	device     BLOB NOT NULL REFERENCES devices (id),
	kind       TEXT NOT NULL CHECK (kind IN ('pvr', 'rvr')),
	nonce      BLOB,
	cose       BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX voucher_requests_device ON voucher_requests (device, id);

CREATE TABLE vouchers (
	id         INTEGER PRIMARY KEY,
	device     BLOB NOT NULL REFERENCES devices (id),
	pvr        INTEGER NOT NULL REFERENCES voucher_requests (id),
	rvr        INTEGER NOT NULL REFERENCES voucher_requests (id),
	nonce      BLOB,
	masa_url   TEXT NOT NULL,
	cose       BLOB NOT NULL,                                       -- as the MASA sent it
	created_at INTEGER NOT NULL
);
CREATE INDEX vouchers_device ON vouchers (device, id);

CREATE TABLE telemetry (
	id         INTEGER PRIMARY KEY,
	device     BLOB NOT NULL REFERENCES devices (id),
	kind       TEXT NOT NULL CHECK (kind IN ('vs', 'es')),
	status     INTEGER NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	body       BLOB NOT NULL,                                       -- the CBOR as received
	created_at INTEGER NOT NULL
);
CREATE INDEX telemetry_device ON telemetry (device, id);

CREATE TABLE certificates (
	serial        TEXT PRIMARY KEY,                                 -- hex
	device        BLOB NOT NULL REFERENCES devices (id),
	op            TEXT NOT NULL CHECK (op IN ('enroll', 'reenroll')),
	subject       TEXT NOT NULL,
	der           BLOB NOT NULL,
	not_before    INTEGER NOT NULL,
	not_after     INTEGER NOT NULL,
	issued_at     INTEGER NOT NULL,
	revoked_at    INTEGER,
	revoke_reason TEXT
) WITHOUT ROWID;
CREATE INDEX certificates_device ON certificates (device, issued_at);

CREATE TABLE expected (
	id            INTEGER PRIMARY KEY,
	serial        TEXT UNIQUE,
	idevid_sha256 BLOB UNIQUE CHECK (idevid_sha256 IS NULL OR length(idevid_sha256) = 32),
	note          TEXT NOT NULL DEFAULT '',
	added_at      INTEGER NOT NULL,
	CHECK (serial IS NOT NULL OR idevid_sha256 IS NOT NULL)
);
`,
}

// SchemaVersion is the schema this build writes.
var SchemaVersion = len(migrations)

func migrate(ctx context.Context, db *sql.DB) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: database is at version %d, this build knows %d", ErrSchema, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}
