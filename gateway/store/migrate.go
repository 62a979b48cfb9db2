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
	// 2: signed records, the upstream outbox, OSCORE contexts, check-ins.
	// The write path of a check-in touches as few randomly keyed B-tree
	// pages as possible (each costs a WAL page per commit): the record
	// (sequential key) and its per-device index entry, the outbox
	// (sequential), and one narrow check-in state row.
	`
-- The record chain: every event the gateway signed, in sequence order. A
-- device's chain head is its record with the highest seq.
CREATE TABLE records (
	seq    INTEGER PRIMARY KEY,                     -- gateway sequence number (record key 6)
	device BLOB NOT NULL CHECK (length(device) = 32),
	serial TEXT NOT NULL,                           -- record key 4
	type   TEXT NOT NULL,
	time   INTEGER NOT NULL,                        -- record key 5, unix seconds
	id     BLOB NOT NULL CHECK (length(id) = 32),   -- SHA-256 of cose: the record id
	cose   BLOB NOT NULL
);
CREATE INDEX records_device ON records (device, seq);

-- The outbox: one row per record, in commit order (pos is assigned by the
-- single writer, so a cursor over pos never passes a record that commits
-- later). Sinks keep cursors; rows are pruned once every sink passed them
-- or a retention bound drops them (counted, never silently).
CREATE TABLE outbox (
	pos INTEGER PRIMARY KEY AUTOINCREMENT,
	seq INTEGER NOT NULL UNIQUE REFERENCES records (seq)
);
CREATE TABLE cursors (
	sink TEXT PRIMARY KEY,
	pos  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE parked (
	sink   TEXT NOT NULL,
	seq    INTEGER NOT NULL,
	reason TEXT NOT NULL,
	at     INTEGER NOT NULL,
	PRIMARY KEY (sink, seq)
) WITHOUT ROWID;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

-- OSCORE security contexts (RFC 8613 §3), one per device, provisioned over
-- the LDevID-authenticated DTLS session (/t/oscore). Read-mostly.
CREATE TABLE oscore_contexts (
	device        BLOB PRIMARY KEY REFERENCES devices (id),
	kid           BLOB NOT NULL UNIQUE,   -- the device's Sender ID = the gateway's Recipient ID
	gateway_id    BLOB NOT NULL,          -- the gateway's Sender ID
	master_secret BLOB NOT NULL,
	master_salt   BLOB NOT NULL,
	sender_seq    INTEGER,                -- the gateway's persisted Sender Sequence Number mark (B.1.1)
	created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- What changes at every check-in, in one narrow row per device: the
-- schedule and the OSCORE replay window (committed with the check-in
-- record, so an acknowledged request is never accepted again).
CREATE TABLE checkins (
	device        BLOB PRIMARY KEY REFERENCES devices (id),
	class         TEXT NOT NULL DEFAULT 'default',
	last_checkin  INTEGER,                -- unix seconds
	due_at        INTEGER,                -- next check-in due
	overdue_at    INTEGER,                -- next overdue deadline (due + grace, then + interval)
	missed        INTEGER NOT NULL DEFAULT 0,
	replay_high   INTEGER,                -- NULL before the context's first request
	replay_bitmap INTEGER
) WITHOUT ROWID;
`,
	// 3: ownership lifecycle.
	`
-- An operation waiting for the device: "reset" (told at its next
-- check-in) or "rebootstrap" (a transfer: the device is told to onboard
-- with its new owner, and the gateway finishes once the MASA shows it did).
CREATE TABLE pending (
	device        BLOB PRIMARY KEY REFERENCES devices (id),
	action        TEXT NOT NULL CHECK (action IN ('reset', 'rebootstrap')),
	reason        TEXT NOT NULL DEFAULT '',
	registrar     TEXT NOT NULL DEFAULT '',     -- rebootstrap: the new owner's registrar, a hint for the device
	authorization BLOB,                         -- rebootstrap: the transfer authorisation (COSE_Sign1)
	new_owner     BLOB,                         -- rebootstrap: SHA-256 of the new owner's domain CA SPKI
	not_after     INTEGER,                      -- rebootstrap: when the authorisation expires
	created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- An expected device may come with the transfer authorisation its previous
-- owner gave, or as a repossession this domain claimed at the MASA.
ALTER TABLE expected ADD COLUMN authorization BLOB;
ALTER TABLE expected ADD COLUMN repossession BLOB;   -- the recovery authority's order (COSE_Sign1)
ALTER TABLE expected ADD COLUMN notice_until INTEGER; -- repossession: end of the MASA's notice period

-- Delegations: a device's records copied to another domain's upstream,
-- and read access to the device with a token, until a time.
CREATE TABLE delegations (
	id         TEXT PRIMARY KEY,
	device     BLOB NOT NULL REFERENCES devices (id),
	sink       TEXT NOT NULL,                   -- the delegate sink's name (its outbox cursor)
	config     TEXT NOT NULL,                   -- the sink configuration, JSON
	from_pos   INTEGER NOT NULL,                -- outbox position at the start: earlier records are not delegated
	end_pos    INTEGER,                         -- outbox position at the end (its "delegate end" record)
	until      INTEGER NOT NULL,
	ended_at   INTEGER,
	token_hash BLOB NOT NULL UNIQUE,            -- SHA-256 of the delegate's API token
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX delegations_device ON delegations (device);
`,
	// 4: the MASA's claims feed, as this owner last recorded it.
	`
-- A repossession claimed against one of this domain's devices, with the
-- side of it this gateway last recorded: "claimed", "objected" or "out".
CREATE TABLE claims (
	device       BLOB NOT NULL REFERENCES devices (id),
	order_hash   BLOB NOT NULL CHECK (length(order_hash) = 32),
	new_owner    BLOB NOT NULL CHECK (length(new_owner) = 32),
	reason       TEXT NOT NULL DEFAULT '',
	notice_until INTEGER NOT NULL,
	status       TEXT NOT NULL CHECK (status IN ('claimed', 'objected', 'out')),
	masa_url     TEXT NOT NULL,
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (device, order_hash)
) WITHOUT ROWID;
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
