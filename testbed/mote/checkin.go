package mote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/oscore"
	"github.com/tumbler-iot/tumbler/cose"
)

// Paths of the check-in service.
const (
	pathProvision = "/t/oscore"
	pathCheckin   = "/ci"
)

// ErrCheckin: a check-in was not acknowledged.
var ErrCheckin = errors.New("check-in refused")

// Provision opens a DTLS session with the device's LDevID (the registrar
// authenticated against the domain CAs) and asks for an OSCORE context
// (POST /t/oscore, docs/oscore-provisioning.md).
func (p *Pledge) Provision(ctx context.Context, addr net.Addr, enr *Enrollment) (*oscore.Context, error) {
	roots := x509.NewCertPool()
	for _, c := range enr.DomainCAs {
		roots.AddCert(c)
	}
	pc, err := p.cfg.Listen()
	if err != nil {
		return nil, err
	}
	c, err := coap.DialDTLS(ctx, pc, addr, coap.ClientDTLSConfig{
		Certificate: tls.Certificate{Certificate: [][]byte{enr.LDevID.Raw}, PrivateKey: enr.Key, Leaf: enr.LDevID},
		RootCAs:     roots, MTU: p.cfg.MTU, HandshakeTimeout: p.cfg.HandshakeTimeout, FlightInterval: p.cfg.FlightInterval,
	}, p.clientOptions()...)
	if err != nil {
		return nil, &StepError{Step: "provision", Err: err}
	}
	defer c.Close()
	resp, err := c.Do(ctx, &coap.Request{Method: codes.POST, Path: pathProvision, ContentFormat: coap.FormatNone, Accept: coap.FormatCBOR})
	if err != nil {
		return nil, &StepError{Step: "provision", Err: err}
	}
	if resp.Code != codes.Changed {
		return nil, &StepError{Step: "provision", Code: resp.Code, Diagnostic: string(resp.Payload), Err: ErrRefused}
	}
	var m map[int][]byte
	if resp.ContentFormat != coap.FormatCBOR || cose.Unmarshal(resp.Payload, &m) != nil {
		return nil, &StepError{Step: "provision", Err: fmt.Errorf("%w: context is not a CBOR map", ErrRefused)}
	}
	return oscore.NewContext(oscore.Params{MasterSecret: m[2], MasterSalt: m[5], SenderID: m[7], RecipientID: m[8]},
		oscore.WithClock(p.cfg.Now), oscore.WithRand(p.cfg.Rand))
}

// Status is what a device reports in a check-in.
type Status struct {
	Uptime   uint64
	Firmware string
	// Battery in percent; nil for mains power.
	Battery *uint8
	Reboots uint64
	// Extra keys (0 or 5 and above) are sent as they are; the gateway
	// keeps them in the record.
	Extra map[uint64]any
}

// Checker sends OSCORE check-ins to the gateway's CoAP port.
type Checker struct {
	c  *coap.Client
	oc oscore.Client
}

// NewChecker opens a plain CoAP client to addr for check-ins protected
// with oc.
func (p *Pledge) NewChecker(ctx context.Context, addr net.Addr, oc *oscore.Context) (*Checker, error) {
	pc, err := p.cfg.Listen()
	if err != nil {
		return nil, err
	}
	c, err := coap.DialUDP(ctx, pc, addr, p.clientOptions()...)
	if err != nil {
		return nil, err
	}
	return &Checker{c: c, oc: oscore.Client{Ctx: oc}}, nil
}

// Close closes the client.
func (k *Checker) Close() error { return k.c.Close() }

// Answer is the gateway's answer to a check-in.
type Answer struct {
	// Due is when the next check-in is due.
	Due time.Duration
	// Action is what the owner asks of the device: "" (nothing),
	// "rebootstrap" (onboard again, to Registrar if given, keeping the
	// current credentials until the new enrollment completes) or "reset"
	// (the gateway has revoked the device's credentials: forget them and
	// onboard again).
	Action string
	// Registrar is a hint, a coaps:// URI, for "rebootstrap".
	Registrar string
}

// Actions a check-in answer may carry.
const (
	ActionRebootstrap = "rebootstrap"
	ActionReset       = "reset"
)

// CheckIn sends one check-in (POST /ci inside OSCORE, CF 60) and returns
// the gateway's answer: when the next one is due, and any action.
func (k *Checker) CheckIn(ctx context.Context, s Status) (Answer, error) {
	m := map[uint64]any{1: s.Uptime, 2: s.Firmware, 4: s.Reboots}
	if s.Battery != nil {
		m[3] = *s.Battery
	} else {
		m[3] = nil
	}
	for k, v := range s.Extra {
		m[k] = v
	}
	payload, err := cose.Marshal(m)
	if err != nil {
		return Answer{}, err
	}
	resp, err := k.oc.Do(ctx, k.c, &coap.Request{Method: codes.POST, Path: pathCheckin, ContentFormat: coap.FormatCBOR, Accept: coap.FormatNone, Payload: payload})
	if err != nil {
		return Answer{}, err
	}
	if resp.Code != codes.Changed {
		return Answer{}, &StepError{Step: "checkin", Code: resp.Code, Diagnostic: string(resp.Payload), Err: ErrCheckin}
	}
	var a struct {
		Due       uint64 `cbor:"1,keyasint"`
		Action    string `cbor:"2,keyasint,omitempty"`
		Registrar string `cbor:"3,keyasint,omitempty"`
	}
	if err := cbor.Unmarshal(resp.Payload, &a); err != nil || a.Due == 0 {
		return Answer{}, &StepError{Step: "checkin", Err: fmt.Errorf("%w: response is not {1: seconds, ?2: action, ?3: registrar}", ErrCheckin)}
	}
	switch a.Action {
	case "", ActionRebootstrap, ActionReset:
	default:
		return Answer{}, &StepError{Step: "checkin", Err: fmt.Errorf("%w: unknown action %q", ErrCheckin, a.Action)}
	}
	return Answer{Due: time.Duration(a.Due) * time.Second, Action: a.Action, Registrar: a.Registrar}, nil
}
