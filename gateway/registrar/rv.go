package registrar

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/cose/voucher"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
)

// serveRV is /.well-known/brski/rv: a COSE-signed pledge voucher-request in
// (CF 836, or 18 as OpenThread's CCM pledge sends), a voucher out (2.04, CF
// 836, the MASA's unprotected headers removed). Nothing is stored unless a
// voucher is obtained.
func (r *Registrar) serveRV(ctx context.Context, req *coap.Request) (*coap.Response, error) {
	start := r.now()
	resp, err := r.requestVoucher(ctx, req)
	r.metrics.observeRV(err, r.now().Sub(start))
	return resp, err
}

func (r *Registrar) requestVoucher(ctx context.Context, req *coap.Request) (*coap.Response, error) {
	if req.ContentFormat != coap.FormatVoucherCOSE && req.ContentFormat != coap.FormatCOSESign1 {
		return nil, coap.Errorf(codes.UnsupportedMediaType, "voucher-request must be CF 836 or 18", ErrContentFormat)
	}
	respFormat := coap.FormatVoucherCOSE
	switch req.Accept {
	case coap.FormatNone, coap.FormatVoucherCOSE:
	case coap.FormatCOSESign1:
		respFormat = coap.FormatCOSESign1
	default:
		return nil, coap.Errorf(codes.NotAcceptable, "voucher is CF 836", ErrAccept)
	}
	pl, err := r.pledgeOf(req.Peer)
	if err != nil {
		return nil, err
	}
	log := r.log.With().Str("serial", pl.serial).Hex("device", pl.id[:8]).Logger()

	// The pledge voucher-request: strict decode, IDevID signature, and the
	// rules of RFC 8995 §5.5 / cBRSKI §3.4.
	spvr, err := voucher.ParseSignedRequest(req.Payload)
	if err != nil {
		return nil, coap.Errorf(codes.BadRequest, "malformed voucher-request", fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if err := spvr.Sign1.Verify(pl.idevid.PublicKey); err != nil {
		return nil, coap.Errorf(codes.Forbidden, "voucher-request not signed by the IDevID", fmt.Errorf("%w: %w", ErrSignature, err))
	}
	pvr := spvr.Request
	if err := voucher.ValidatePVR(pvr, pl.idevid, r.cert, r.now()); err != nil {
		return nil, pvrError(err)
	}
	prev, err := r.cfg.Store.Device(ctx, pl.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	case prev.State == store.StateDecommissioned:
		return nil, coap.Errorf(codes.Forbidden, "device decommissioned", fmt.Errorf("%w: serial %s", ErrState, pl.serial))
	}
	if r.cfg.Policy == Expected {
		ok, err := r.cfg.Store.IsExpected(ctx, pl.serial, pl.idevid.Raw)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, coap.Errorf(codes.Forbidden, "device not expected by this domain", fmt.Errorf("%w: serial %s", ErrPolicy, pl.serial))
		}
	}

	// The registrar voucher-request, signed with the registrar key; x5bag
	// carries the registrar chain and the pledge's DTLS chain (-30+).
	rvr := voucher.NewRVR(req.Payload, pvr, pl.idevid, r.now())
	bag := append([][]byte(nil), r.chain...)
	for _, c := range pl.chain {
		bag = append(bag, c.Raw)
	}
	srvr, err := voucher.SignRequest(r.rand, r.cfg.Key, rvr, bag)
	if err != nil {
		return nil, fmt.Errorf("registrar: sign RVR: %w", err)
	}
	masaURL, err := r.masaURL(pl)
	if err != nil {
		return nil, err
	}
	mctx, cancel := context.WithTimeout(ctx, r.cfg.MASATimeout)
	t0 := time.Now()
	raw, err := r.cfg.MASA.RequestVoucher(mctx, masaURL, srvr)
	cancel()
	r.metrics.masaLatency.Observe(time.Since(t0).Seconds())
	if err != nil {
		return nil, masaError(err)
	}

	// Check the voucher answers this request before storing or forwarding
	// it; its signature is for the pledge to verify against its
	// manufacturer trust anchor.
	sv, err := voucher.ParseSignedVoucher(raw)
	if err != nil {
		return nil, coap.Errorf(codes.BadGateway, "MASA returned a malformed voucher", fmt.Errorf("%w: %w", ErrBadVoucher, err))
	}
	if sv.Voucher.SerialNumber != pl.serial || string(sv.Voucher.Nonce) != string(pvr.Nonce) {
		return nil, coap.Errorf(codes.BadGateway, "MASA voucher does not match the request", ErrBadVoucher)
	}
	stripped, err := sv.Sign1.StripUnprotected()
	if err != nil {
		return nil, fmt.Errorf("registrar: strip voucher headers: %w", err)
	}
	apply := func(tx *store.Tx) error {
		if err := tx.PutDevice(store.Device{ID: pl.id, Serial: pl.serial, IDevID: pl.idevid.Raw, State: store.StateVoucher}); err != nil {
			return err
		}
		return tx.AddVoucherExchange(store.VoucherExchange{Device: pl.id, Nonce: pvr.Nonce, PVR: req.Payload, RVR: srvr, Voucher: raw, MASAURL: masaURL})
	}
	if prev.State == store.StateEnrolled || prev.State == store.StateActive {
		// A device still enrolled here came back through onboarding: it
		// was reset on the device. Its old credentials die with the new
		// voucher, and the reset is recorded.
		err = r.deviceReset(ctx, pl, apply)
	} else {
		err = r.cfg.Store.Update(ctx, apply)
	}
	if err != nil {
		return nil, err
	}
	log.Info().Str("masa", masaURL).Msg("voucher obtained")
	return &coap.Response{Code: codes.Changed, ContentFormat: respFormat, Payload: stripped}, nil
}

// deviceReset commits a voucher exchange for a device that was enrolled,
// together with the revocation of its certificates, the deletion of its
// OSCORE context and a "reset" record (initiator "device").
func (r *Registrar) deviceReset(ctx context.Context, pl *pledge, apply func(*store.Tx) error) error {
	certs, err := r.cfg.Store.Certificates(ctx, pl.id)
	if err != nil {
		return err
	}
	body := &record.ResetBody{Initiator: record.ResetByDevice, Revoked: [][]byte{}}
	for _, c := range certs {
		if c.RevokedAt.IsZero() {
			body.Revoked = append(body.Revoked, c.Cert.SerialNumber.Bytes())
		}
	}
	all := func(tx *store.Tx) error {
		if err := apply(tx); err != nil {
			return err
		}
		if _, err := tx.RevokeCertificates(pl.id, "device reset"); err != nil {
			return err
		}
		if err := tx.ClearPending(pl.id); err != nil {
			return err
		}
		return tx.DeleteOSCOREContext(pl.id)
	}
	if r.cfg.Journal == nil {
		return r.cfg.Store.Update(ctx, all)
	}
	if _, err := r.cfg.Journal.Append(ctx, journal.Device{ID: pl.id, Serial: pl.serial}, body, all); err != nil {
		return err
	}
	r.log.Warn().Str("serial", pl.serial).Int("revoked", len(body.Revoked)).Msg("enrolled device onboarding again: reset on the device")
	if r.onReset != nil {
		r.onReset(pl.id, body.Revoked)
	}
	return nil
}

// MASAURLFor is the MASA of a device: its IDevID's id-pe-masa-url, else
// the configured default.
func (r *Registrar) MASAURLFor(idevid *x509.Certificate) (string, error) {
	return r.masaURL(&pledge{idevid: idevid})
}

// masaURL picks the MASA for a pledge: its IDevID's id-pe-masa-url, else
// the configured default.
func (r *Registrar) masaURL(pl *pledge) (string, error) {
	u, ok, err := pki.MASAURL(pl.idevid)
	if err != nil {
		return "", coap.Errorf(codes.BadRequest, "IDevID MASA URL unusable", err)
	}
	if ok {
		return u, nil
	}
	if r.cfg.MASAURL == "" {
		return "", coap.Errorf(codes.ServiceUnavailable, "no MASA known for this device", ErrMASAUnavailable)
	}
	return r.cfg.MASAURL, nil
}

// pvrError maps a voucher-request validation failure to its CoAP code.
// A proximity mismatch is 4.01 (RFC 8995 §5.2: the pledge talked to a
// different registrar); other content errors are 4.00 or 4.03.
func pvrError(err error) error {
	switch {
	case errors.Is(err, voucher.ErrProximityMismatch):
		return coap.Errorf(codes.Unauthorized, "proximity registrar does not match", err)
	case errors.Is(err, voucher.ErrSerialMismatch):
		return coap.Errorf(codes.Forbidden, "serial-number does not match the IDevID", err)
	case errors.Is(err, voucher.ErrNonceMissing):
		return coap.Errorf(codes.BadRequest, "voucher-request has no nonce", err)
	}
	return coap.Errorf(codes.BadRequest, "voucher-request invalid", err)
}

// masaError maps a MASA failure to what the pledge sees: HTTP refusals are
// mirrored (cBRSKI -31 §"CoAP Responses"), unavailability is 5.03 so the
// pledge retries later.
func masaError(err error) error {
	var me *MASAError
	if errors.As(err, &me) {
		code := codes.Forbidden
		switch me.Status {
		case http.StatusUnauthorized:
			code = codes.Unauthorized
		case http.StatusNotFound:
			code = codes.NotFound
		case http.StatusNotAcceptable:
			code = codes.NotAcceptable
		case http.StatusUnsupportedMediaType:
			code = codes.UnsupportedMediaType
		case http.StatusBadRequest:
			code = codes.BadGateway // our request was malformed: our fault, not the pledge's
		}
		diag := "MASA refused: " + me.Reason
		if len(diag) > 128 {
			cut := strings.LastIndexByte(diag[:125], ' ')
			if cut < 64 {
				cut = 125
			}
			diag = diag[:cut] + "..."
		}
		return coap.Errorf(code, diag, fmt.Errorf("%w: %w", ErrMASARefused, err))
	}
	if errors.Is(err, ErrBadVoucher) {
		return coap.Errorf(codes.BadGateway, "MASA returned an unusable voucher", err)
	}
	return coap.Errorf(codes.ServiceUnavailable, "MASA unavailable, retry later", fmt.Errorf("%w: %w", ErrMASAUnavailable, err))
}
