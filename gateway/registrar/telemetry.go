package registrar

import (
	"context"
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// serveVS is /.well-known/brski/vs: the pledge's verdict on the voucher
// (RFC 8995 §5.7), CBOR (CF 60, MUST per cBRSKI). Stored and logged; 2.04.
func (r *Registrar) serveVS(ctx context.Context, req *coap.Request) (*coap.Response, error) {
	return r.telemetry(ctx, req, store.VoucherStatus)
}

// serveES is /.well-known/brski/es: the pledge's enrollment status (RFC
// 8995 §5.9.4), over the IDevID session or a new one with the LDevID.
func (r *Registrar) serveES(ctx context.Context, req *coap.Request) (*coap.Response, error) {
	return r.telemetry(ctx, req, store.EnrollStatus)
}

func (r *Registrar) telemetry(ctx context.Context, req *coap.Request, kind store.TelemetryKind) (*coap.Response, error) {
	if req.ContentFormat != coap.FormatCBOR {
		return nil, coap.Errorf(codes.UnsupportedMediaType, "status telemetry must be CF 60", ErrContentFormat)
	}
	id, err := r.deviceOf(ctx, req.Peer)
	if err != nil {
		return nil, err
	}
	st, err := voucher.ParseStatus(req.Payload)
	if err != nil {
		return nil, coap.Errorf(codes.BadRequest, "malformed status telemetry", fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	// The state is read and moved in one transaction, so that two reports
	// racing (a retransmission on a new session) cannot both pass the check.
	var dev store.Device
	err = r.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		var err error
		if dev, err = tx.Device(id); err != nil {
			return err
		}
		next, ok := nextState(dev.State, kind, st.Status)
		if !ok {
			return fmt.Errorf("%w: %s in state %s", ErrState, kind, dev.State)
		}
		if err := tx.AddTelemetry(store.Telemetry{Device: id, Kind: kind, Status: st.Status, Reason: st.Reason, Body: req.Payload}); err != nil {
			return err
		}
		return tx.SetState(id, next)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, coap.Errorf(codes.Forbidden, "no voucher issued to this device", ErrUnknownDevice)
	case errors.Is(err, ErrState):
		return nil, coap.Errorf(codes.Forbidden, "telemetry does not fit the device state", err)
	case err != nil:
		return nil, err
	}
	ev := r.log.Info()
	if !st.Status {
		ev = r.log.Warn().Str("reason", st.Reason)
	}
	ev.Str("serial", dev.Serial).Str("kind", string(kind)).Bool("status", st.Status).Msg("status telemetry")
	r.metrics.telemetry.WithLabelValues(string(kind), fmt.Sprint(st.Status)).Inc()
	return &coap.Response{Code: codes.Changed, ContentFormat: coap.FormatNone}, nil
}

// nextState is the onboarding state machine for telemetry. /vs follows a
// voucher; /es follows an enrollment attempt (or reports that it failed,
// possibly before any certificate was issued). A repeated report (a lost
// 2.04 makes the pledge send it again) is accepted.
func nextState(cur store.State, kind store.TelemetryKind, ok bool) (store.State, bool) {
	switch kind {
	case store.VoucherStatus:
		switch cur {
		case store.StateVoucher, store.StateVoucherAccepted, store.StateVoucherRejected:
			if ok {
				return store.StateVoucherAccepted, true
			}
			return store.StateVoucherRejected, true
		}
	case store.EnrollStatus:
		switch cur {
		case store.StateEnrolled, store.StateActive:
			if ok {
				return store.StateActive, true
			}
			return store.StateEnrollFailed, true
		case store.StateVoucher, store.StateVoucherAccepted, store.StateEnrollFailed:
			if !ok {
				return store.StateEnrollFailed, true
			}
		}
	}
	return "", false
}
