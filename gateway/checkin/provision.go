package checkin

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// Lengths of provisioned key material (RFC 8613 §3.1 recommends a 16-byte
// master secret for AES-CCM-16-64-128; §3.3 an 8-byte salt is ample).
const (
	masterSecretLen = 16
	masterSaltLen   = 8
)

// Keys of the provisioning response: 2 and 5 as in the OSCORE Security
// Context Object of RFC 9203 §3.2.1 (ms, salt); 7 and 8 are Tumbler's.
const (
	keyMasterSecret = 2
	keyMasterSalt   = 5
	keyDeviceID     = 7
	keyGatewayID    = 8
)

// gatewaySenderID is the gateway's Sender ID in every context: empty, which
// RFC 8613 §3.3 allows; contexts stay unique by their master secrets.
var gatewaySenderID = []byte{}

// serveProvision is POST /t/oscore over DTLS with an LDevID: a fresh
// context for the device (replacing any previous one), check-in tracking
// started, and the context returned as
//
//	oscore-context = {
//	  2 => bstr .size 16,   ; master secret
//	  5 => bstr .size 8,    ; master salt
//	  7 => bstr,            ; the device's Sender ID
//	  8 => bstr,            ; the gateway's Sender ID
//	}
//
// with AEAD 10 (AES-CCM-16-64-128), HKDF SHA-256 and no ID Context implied
// (docs/oscore-provisioning.md).
func (s *Service) serveProvision(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	if r.ContentFormat != coap.FormatNone && r.ContentFormat != coap.FormatCBOR {
		return nil, coap.Errorf(codes.UnsupportedMediaType, "no payload or CF 60 expected", ErrContentFormat)
	}
	if r.Accept != coap.FormatNone && r.Accept != coap.FormatCBOR {
		return nil, coap.Errorf(codes.NotAcceptable, "the context is CF 60", ErrContentFormat)
	}
	id, err := s.identify(ctx, r.Peer)
	if err != nil {
		return nil, err
	}
	dev, err := s.store.Device(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, coap.Errorf(codes.Forbidden, "device not enrolled here", ErrNotEnrolled)
	}
	if err != nil {
		return nil, err
	}
	if dev.State != store.StateEnrolled && dev.State != store.StateActive {
		return nil, coap.Errorf(codes.Forbidden, "device not enrolled here", fmt.Errorf("%w: state %s", ErrNotEnrolled, dev.State))
	}
	secret := make([]byte, masterSecretLen)
	salt := make([]byte, masterSaltLen)
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(s.rand, salt); err != nil {
		return nil, err
	}
	var kid, oldKID []byte
	if old, err := s.store.OSCOREContext(ctx, id); err == nil {
		oldKID = old.KID
	}
	className, cl := s.cfg.classOf(dev.Serial)
	now := s.now()
	err = s.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		if kid, err = tx.NextKID(); err != nil {
			return err
		}
		if err := tx.PutOSCOREContext(store.OSCOREContext{Device: id, KID: kid, GatewayID: gatewaySenderID, MasterSecret: secret, MasterSalt: salt}); err != nil {
			return err
		}
		if err := tx.SetClass(id, className); err != nil {
			return err
		}
		due := now.Add(cl.Interval)
		return tx.SetSchedule(id, due, due.Add(cl.Grace))
	})
	if err != nil {
		return nil, err
	}
	if oldKID != nil {
		s.contexts.drop(oldKID)
	}
	payload, err := cose.Marshal(map[int][]byte{keyMasterSecret: secret, keyMasterSalt: salt, keyDeviceID: kid, keyGatewayID: gatewaySenderID})
	if err != nil {
		return nil, err
	}
	s.log.Info().Str("serial", dev.Serial).Hex("kid", kid).Str("class", className).Msg("OSCORE context provisioned")
	return coap.Changed(coap.FormatCBOR, payload), nil
}
