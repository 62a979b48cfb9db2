package registrar

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/gateway/est"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// Authorize implements est.Authorizer. /sen is for pledges (IDevID) that
// obtained a voucher here and did not reject it; /sren is for devices
// presenting a current, unrevoked LDevID this domain issued.
func (r *Registrar) Authorize(ctx context.Context, peer coap.Peer, op est.Op) (est.Identity, error) {
	switch op {
	case est.Enroll:
		pl, err := r.pledgeOf(peer)
		if err != nil {
			return est.Identity{}, err
		}
		dev, err := r.cfg.Store.Device(ctx, pl.id)
		if errors.Is(err, store.ErrNotFound) {
			return est.Identity{}, coap.Errorf(codes.Forbidden, "no voucher issued to this device", ErrUnknownDevice)
		}
		if err != nil {
			return est.Identity{}, err
		}
		switch dev.State {
		case store.StateVoucher, store.StateVoucherAccepted, store.StateEnrolled, store.StateEnrollFailed:
		default:
			return est.Identity{}, coap.Errorf(codes.Forbidden, "enrollment not allowed in state "+string(dev.State), ErrState)
		}
		return est.Identity{DeviceID: pl.id, Serial: pl.serial}, nil
	case est.Reenroll:
		if _, err := r.pledgeOf(peer); err == nil {
			return est.Identity{}, coap.Errorf(codes.Forbidden, "re-enrollment needs the LDevID", ErrState)
		}
		id, err := r.deviceOf(ctx, peer)
		if err != nil {
			return est.Identity{}, err
		}
		dev, err := r.cfg.Store.Device(ctx, id)
		if err != nil {
			return est.Identity{}, err
		}
		return est.Identity{DeviceID: id, Serial: dev.Serial}, nil
	}
	return est.Identity{}, fmt.Errorf("registrar: unknown EST operation %v", op)
}

// RecordIssued implements est.Recorder: the certificate, the device's new
// state and the signed "enroll" record are committed in one transaction
// before the certificate leaves the gateway.
func (r *Registrar) RecordIssued(ctx context.Context, id est.Identity, cert *x509.Certificate, op est.Op) error {
	cop := store.OpEnroll
	if op == est.Reenroll {
		cop = store.OpReenroll
	}
	apply := func(tx *store.Tx) error {
		if err := tx.AddCertificate(id.DeviceID, cop, cert); err != nil {
			return err
		}
		if op == est.Enroll {
			return tx.SetState(id.DeviceID, store.StateEnrolled)
		}
		return nil
	}
	// The EST server logs the issuance once it is recorded.
	if r.cfg.Journal == nil {
		return r.cfg.Store.Update(ctx, apply)
	}
	body := &record.EnrollBody{LDevIDSerial: cert.SerialNumber.Bytes(), LDevIDNotAfter: cert.NotAfter, LDevIDHash: sha256.Sum256(cert.Raw), ReEnrollment: op == est.Reenroll}
	if op == est.Enroll {
		x, err := r.cfg.Store.LatestVoucher(ctx, id.DeviceID)
		if err != nil {
			return fmt.Errorf("registrar: enroll record: %w", err)
		}
		sv, err := voucher.ParseSignedVoucher(x.Voucher)
		if err != nil {
			return fmt.Errorf("registrar: enroll record: stored voucher: %w", err)
		}
		body.VoucherHash, body.MASAURL = sha256.Sum256(x.Voucher), x.MASAURL
		if sv.Voucher.Assertion != nil {
			body.Assertion = *sv.Voucher.Assertion
		}
	}
	if _, err := r.cfg.Journal.Append(ctx, journal.Device{ID: id.DeviceID, Serial: id.Serial}, body, apply); err != nil {
		return err
	}
	if op == est.Enroll && r.afterEnroll != nil {
		if err := r.afterEnroll(ctx, id.DeviceID, id.Serial); err != nil {
			r.log.Error().Err(err).Str("serial", id.Serial).Msg("after enrollment")
		}
	}
	return nil
}
