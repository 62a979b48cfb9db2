package mote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"

	"github.com/tumbler-iot/tumbler/coap/oscore"
)

// Network is where a device reaches its owner's gateway: the plain CoAP
// port (discovery, OSCORE check-ins) and, if known, the CoAPS registrar
// port (else discovered through CoAP).
type Network struct {
	CoAP  net.Addr
	CoAPS net.Addr
}

// Resolver maps the registrar hint of a "rebootstrap" instruction (a
// coaps:// URI) to the network to join. A device on a real link would
// look the name up, or discover the new owner's registrar on the link.
type Resolver func(hint string) (Network, error)

// ErrNoCredentials: the device holds no LDevID or OSCORE context (it was
// reset, or never onboarded).
var ErrNoCredentials = errors.New("no credentials")

// Device is a mote's life after manufacture: it onboards, provisions its
// OSCORE context, checks in, and follows its owner's instructions —
// re-bootstrap to another registrar (make-before-break: the current
// credentials stay until the new enrollment and context are in hand) or
// reset. Methods are safe for concurrent use.
type Device struct {
	p       *Pledge
	resolve Resolver

	mu  sync.Mutex
	net Network
	enr *Enrollment
	oc  *oscore.Context
	k   *Checker
}

// NewDevice returns a device with no credentials; resolve may be nil
// (re-bootstrap then fails unless the hint is a literal address).
func NewDevice(p *Pledge, resolve Resolver) *Device { return &Device{p: p, resolve: resolve} }

// Pledge is the device's pledge.
func (d *Device) Pledge() *Pledge { return d.p }

// Enrollment is the current enrollment (nil if none).
func (d *Device) Enrollment() *Enrollment {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.enr
}

// Credentials are what the device holds now: where it checks in, its
// enrollment and its OSCORE context (nil after a reset).
func (d *Device) Credentials() (Network, *Enrollment, *oscore.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.net, d.enr, d.oc
}

// Network is where the device currently checks in.
func (d *Device) Network() Network {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.net
}

// Join onboards to the registrar of n, provisions an OSCORE context and
// opens a check-in client; only when all of that succeeded does it
// replace the device's credentials (make-before-break).
func (d *Device) Join(ctx context.Context, n Network) (Timings, error) {
	reg := n.CoAPS
	if reg == nil {
		a, err := d.p.Discover(ctx, n.CoAP)
		if err != nil {
			return Timings{}, err
		}
		reg = a
	}
	enr, t, err := d.p.Onboard(ctx, reg)
	if err != nil {
		return t, err
	}
	oc, err := d.p.Provision(ctx, reg, enr)
	if err != nil {
		return t, err
	}
	k, err := d.p.NewChecker(ctx, n.CoAP, oc)
	if err != nil {
		return t, err
	}
	d.mu.Lock()
	old := d.k
	d.net, d.enr, d.oc, d.k = Network{CoAP: n.CoAP, CoAPS: reg}, enr, oc, k
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return t, nil
}

// Reset is a factory reset: the device forgets its LDevID and OSCORE
// context (it keeps its IDevID and where its gateway is).
func (d *Device) Reset() {
	d.mu.Lock()
	k := d.k
	d.enr, d.oc, d.k = nil, nil, nil
	d.mu.Unlock()
	if k != nil {
		k.Close()
	}
}

// CheckIn checks in with the current owner's gateway.
func (d *Device) CheckIn(ctx context.Context, s Status) (Answer, error) {
	d.mu.Lock()
	k := d.k
	d.mu.Unlock()
	if k == nil {
		return Answer{}, &StepError{Step: "checkin", Err: ErrNoCredentials}
	}
	return k.CheckIn(ctx, s)
}

// Follow carries out the action of a check-in answer: "rebootstrap"
// joins the network the registrar hint resolves to (the current one if
// there is no hint), "reset" forgets the credentials the gateway revoked
// and onboards again where the device is. It returns the network joined.
func (d *Device) Follow(ctx context.Context, a Answer) (Network, Timings, error) {
	switch a.Action {
	case "":
		return d.Network(), Timings{}, nil
	case ActionRebootstrap:
		n, err := d.resolveHint(a.Registrar)
		if err != nil {
			return Network{}, Timings{}, err
		}
		t, err := d.Join(ctx, n)
		return n, t, err
	case ActionReset:
		n := d.Network()
		d.Reset()
		t, err := d.Join(ctx, Network{CoAP: n.CoAP, CoAPS: n.CoAPS})
		return n, t, err
	}
	return Network{}, Timings{}, fmt.Errorf("%w: unknown action %q", ErrCheckin, a.Action)
}

func (d *Device) resolveHint(hint string) (Network, error) {
	if hint == "" {
		return d.Network(), nil
	}
	if d.resolve != nil {
		return d.resolve(hint)
	}
	u, err := url.Parse(hint)
	if err != nil || u.Scheme != "coaps" || u.Port() == "" {
		return Network{}, fmt.Errorf("%w: registrar hint %q is not coaps://host:port", ErrCheckin, hint)
	}
	a, err := net.ResolveUDPAddr("udp", u.Host)
	if err != nil {
		return Network{}, fmt.Errorf("%w: registrar hint %q: %v", ErrCheckin, hint, err)
	}
	return Network{CoAP: a, CoAPS: a}, nil
}

// Close closes the check-in client.
func (d *Device) Close() error {
	d.mu.Lock()
	k := d.k
	d.k = nil
	d.mu.Unlock()
	if k != nil {
		return k.Close()
	}
	return nil
}
