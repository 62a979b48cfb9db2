package store

import (
	"context"
	"fmt"
	"time"
)

// Claim is a repossession claimed at the MASA against one of this
// domain's devices, with the side of it last recorded here.
type Claim struct {
	Device      DeviceID
	OrderHash   [32]byte
	NewOwner    [32]byte
	Reason      string
	NoticeUntil time.Time
	Status      string // "claimed", "objected" or "out"
	MASAURL     string
	UpdatedAt   time.Time
}

var qPutClaim = w(`INSERT INTO claims (device, order_hash, new_owner, reason, notice_until, status, masa_url, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (device, order_hash) DO UPDATE SET status = excluded.status, notice_until = excluded.notice_until,
	reason = excluded.reason, masa_url = excluded.masa_url, updated_at = excluded.updated_at`)

const claimQuery = `SELECT device, order_hash, new_owner, reason, notice_until, status, masa_url, updated_at FROM claims`

// PutClaim stores a claim or its new status.
func (t *Tx) PutClaim(c Claim) error {
	if _, err := t.exec(qPutClaim, c.Device[:], c.OrderHash[:], c.NewOwner[:], c.Reason, c.NoticeUntil.Unix(), c.Status, c.MASAURL, t.now().Unix()); err != nil {
		return fmt.Errorf("store: claim: %w", err)
	}
	return nil
}

// Claims lists the claims recorded against a device (nil: every device),
// oldest first.
func (s *Store) Claims(ctx context.Context, dev *DeviceID) ([]Claim, error) {
	var d []byte
	if dev != nil {
		d = dev[:]
	}
	rows, err := s.r.QueryContext(ctx, claimQuery+` WHERE (? IS NULL OR device = ?) ORDER BY updated_at`, d, d)
	return collect(rows, err, "claims", scanClaim)
}

func scanClaim(r scanner) (Claim, error) {
	var c Claim
	var id, order, owner []byte
	var until, updated int64
	if err := r.Scan(&id, &order, &owner, &c.Reason, &until, &c.Status, &c.MASAURL, &updated); err != nil {
		return c, fmt.Errorf("store: claims: %w", err)
	}
	copy(c.Device[:], id)
	copy(c.OrderHash[:], order)
	copy(c.NewOwner[:], owner)
	c.NoticeUntil, c.UpdatedAt = time.Unix(until, 0), time.Unix(updated, 0)
	return c, nil
}

// MASAURLs lists every MASA this domain's vouchers came from.
func (s *Store) MASAURLs(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT masa_url FROM vouchers ORDER BY masa_url`)
	return collect(rows, err, "MASA URLs", func(r scanner) (u string, err error) {
		err = r.Scan(&u)
		return u, err
	})
}
