package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/masa"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

func startLab(t *testing.T) (*Lab, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	lab, err := StartLab(ctx, t.TempDir(), LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	return lab, ctx
}

func newMote(t *testing.T, lab *Lab, serial string, cfg mote.Config) (*mote.Pledge, mote.Identity) {
	t.Helper()
	cert, key, err := lab.MASA.IssueIDevID(serial)
	if err != nil {
		t.Fatal(err)
	}
	id := mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: lab.MASA.CA()}
	if cfg.Listen == nil {
		cfg.Listen = loopbackUDP
	}
	p, err := mote.New(id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, id
}

// breakable is a socket whose link can be cut: writes fail once broken.
type breakable struct {
	net.PacketConn
	broken *atomic.Bool
}

func (b breakable) WriteTo(p []byte, a net.Addr) (int, error) {
	if b.broken.Load() {
		return 0, errors.New("link down")
	}
	return b.PacketConn.WriteTo(p, a)
}

// A pledge whose DTLS session breaks right after the voucher reconnects
// with the same IDevID and continues with /vs, /sen, /es; the registrar
// keeps one voucher exchange and the device ends active.
func TestSessionBreakAfterVoucher(t *testing.T) {
	lab, ctx := startLab(t)
	var sockets atomic.Int32
	var cut atomic.Bool
	first := &atomic.Bool{}
	p, id := newMote(t, lab, "BREAK-1", mote.Config{
		Listen: func() (net.PacketConn, error) {
			pc, err := loopbackUDP()
			if err != nil {
				return nil, err
			}
			if sockets.Add(1) == 2 { // 1 is discovery, 2 the first DTLS session
				return breakable{pc, first}, nil
			}
			return pc, nil
		},
		RetryWait: 10 * time.Millisecond,
		OnStep: func(step string, err error) {
			if step == "voucher" && err == nil && !cut.Swap(true) {
				first.Store(true)
			}
		},
	})
	addr, err := p.Discover(ctx, lab.CoAP)
	if err != nil {
		t.Fatal(err)
	}
	enr, tm, err := p.Onboard(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Reconnects != 1 {
		t.Errorf("reconnects = %d, want 1", tm.Reconnects)
	}
	if enr.LDevID.Subject.SerialNumber != "BREAK-1" {
		t.Errorf("LDevID serial %q", enr.LDevID.Subject.SerialNumber)
	}
	dev, err := lab.Gateway.Store().Device(ctx, store.DeviceID(pki.DeviceID(id.IDevID())))
	if err != nil || dev.State != store.StateActive {
		t.Fatalf("device %+v %v", dev, err)
	}
}

// The registrar's DTLS port refuses pledges from unknown manufacturers
// and clients without certificates: the handshake fails, nothing is stored.
func TestDTLSRefusals(t *testing.T) {
	lab, ctx := startLab(t)
	// A second manufacturer the gateway does not trust.
	rogue, err := masa.New(mustCA(t), mustKey, "rogue.test", masa.AnyDomain, "")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := rogue.IssueIDevID("ROGUE-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cert tls.Certificate
	}{
		{"unknown manufacturer", tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		{"no client certificate", tls.Certificate{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := loopbackUDP()
			if err != nil {
				t.Fatal(err)
			}
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			c, err := coap.DialDTLS(hctx, pc, lab.CoAPS, coap.ClientDTLSConfig{Certificate: tc.cert, InsecureSkipVerify: true, HandshakeTimeout: 5 * time.Second})
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded")
			}
			if !errors.Is(err, coap.ErrHandshake) {
				t.Errorf("err = %v, want ErrHandshake", err)
			}
		})
	}
	if n, _ := lab.Gateway.Store().CountByState(ctx); len(n) != 0 {
		t.Errorf("refused handshakes wrote state: %v", n)
	}
}

var mustKey, _ = pki.GenerateKey(nil)

func mustCA(t *testing.T) *x509.Certificate {
	ca, err := pki.NewCA(time.Now(), mustKey, pki.Profile{Subject: pkix.Name{CommonName: "Rogue Manufacturer"}})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

type masaFunc func(ctx context.Context, url string, rvr []byte) ([]byte, error)

func (f masaFunc) RequestVoucher(ctx context.Context, url string, rvr []byte) ([]byte, error) {
	return f(ctx, url, rvr)
}

// A MASA that is down answers the pledge 5.03; the pledge retries and
// onboards once the MASA is back.
func TestMASADownThenBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	var lab *Lab
	var calls atomic.Int32
	flaky := masaFunc(func(ctx context.Context, _ string, rvr []byte) ([]byte, error) {
		if calls.Add(1) <= 2 {
			return nil, fmt.Errorf("%w: connection refused", registrar.ErrMASAUnavailable)
		}
		reg, err := pki.LoadCerts(filepath.Join(dir, "gateway", "registrar.pem"))
		if err != nil {
			return nil, err
		}
		return lab.MASA.RequestVoucher(ctx, rvr, reg[0])
	})
	lab, err := StartLab(ctx, dir, LabOptions{GatewayOptions: []gateway.Option{gateway.WithMASAClient(flaky)}})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	var refused []string
	p, _ := newMote(t, lab, "FLAKY-1", mote.Config{RetryWait: 10 * time.Millisecond, OnStep: func(step string, err error) {
		var se *mote.StepError
		if errors.As(err, &se) && se.Code != 0 {
			refused = append(refused, coap.Dotted(se.Code)+" "+se.Diagnostic)
		}
	}})
	addr, err := p.Discover(ctx, lab.CoAP)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Onboard(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 || refused[0] != "5.03 MASA unavailable, retry later" {
		t.Errorf("pledge saw %q", refused)
	}
}
