package ble_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/sim"
	"github.com/tumbler-iot/tumbler/coap"
)

// testCA issues throwaway P-256 certificates: a registrar certificate and
// pledge IDevIDs, all from one root.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	n    int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, n: 1}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func (ca *testCA) issue(t testing.TB, cn string, usage ...x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.n++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.n),
		Subject:      pkix.Name{CommonName: cn, SerialNumber: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// peers records the peer of every request.
type peers struct {
	mu   sync.Mutex
	seen []coap.Peer
}

func (p *peers) handler() coap.Handler {
	m := coap.NewMux()
	m.HandleFunc("/hello", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		p.add(r.Peer)
		return coap.Content(coap.FormatText, []byte("hello over BLE")), nil
	}, coap.Link{})
	m.HandleFunc("/echo", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		p.add(r.Peer)
		return coap.Changed(r.ContentFormat, r.Payload), nil
	}, coap.Link{}, codes.POST)
	return m
}

func (p *peers) add(peer coap.Peer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, peer)
}

func (p *peers) all() []coap.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]coap.Peer(nil), p.seen...)
}

// A pledge's DTLS client (coap.DialDTLS, as testbed/mote uses it) reaches
// the registrar's coap.Server.ServeDTLS through BTP over simulated GATT:
// the handshake with client certificates, then CoAP with Block1 and Block2
// transfers, at the minimum ATT_MTU and at 247, and over links with
// latency and jitter.
func TestDTLSOverBLE(t *testing.T) {
	ca := newTestCA(t)
	registrar := ca.issue(t, "registrar.example", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	idevid := ca.issue(t, "pledge-1", x509.ExtKeyUsageClientAuth)
	for _, tc := range []struct {
		name string
		opts []sim.Option
	}{
		{"mtu23", []sim.Option{sim.WithATTMTU(23, 23)}},
		{"mtu247", []sim.Option{sim.WithATTMTU(247, 247)}},
		{"mtu23-247-latency", []sim.Option{sim.WithSeed(3), sim.WithATTMTU(23, 247), sim.WithLatency(100*time.Microsecond, 400*time.Microsecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			n := newSim(t, tc.opts...)
			central, err := ble.NewCentral()
			if err != nil {
				t.Fatal(err)
			}
			rec := &peers{}
			srv, err := coap.NewServer(rec.handler(),
				coap.WithDTLS(coap.DTLSConfig{Certificate: registrar, ClientCAs: ca.pool()}),
				coap.WithMetrics(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 2)
			go func() { served <- central.Serve(ctx, n) }()
			go func() { served <- srv.ServeDTLS(ctx, central) }() // owns and closes central
			defer func() {
				_ = srv.Close()
				for range 2 {
					if err := <-served; err != nil {
						t.Errorf("serve: %v", err)
					}
				}
			}()

			pc, err := n.Pledge(ctx, "pledge-1")
			if err != nil {
				t.Fatal(err)
			}
			var raddr net.Addr = n.CentralAddr()
			cl, err := coap.DialDTLS(ctx, pc, raddr, coap.ClientDTLSConfig{Certificate: idevid, RootCAs: ca.pool()})
			if err != nil {
				t.Fatalf("DTLS over BLE: %v", err)
			}
			defer cl.Close()
			if chain := cl.PeerChain(); len(chain) == 0 || chain[0].Subject.CommonName != "registrar.example" {
				t.Fatalf("registrar chain %v", chain)
			}
			resp, err := cl.Get(ctx, "/hello", coap.FormatNone)
			if err != nil || resp.Code != codes.Content || string(resp.Payload) != "hello over BLE" {
				t.Fatalf("GET /hello: %+v, %v", resp, err)
			}
			body := bytes.Repeat([]byte("tumbler BLE "), 300) // 3.6 KB: Block1 up, Block2 down
			resp, err = cl.Post(ctx, "/echo", coap.FormatCBOR, body, coap.FormatNone)
			if err != nil || resp.Code != codes.Changed || !bytes.Equal(resp.Payload, body) {
				t.Fatalf("POST /echo: %v, %d octets", err, len(resp.Payload))
			}
			seen := rec.all()
			if len(seen) < 2 {
				t.Fatalf("handler saw %d requests", len(seen))
			}
			for _, p := range seen {
				a, ok := p.Addr.(ble.Addr)
				if !ok || a.Device != "pledge-1" || a.Link != 1 || !p.Secure() || p.Chain[0].Subject.CommonName != "pledge-1" {
					t.Fatalf("peer %+v", p)
				}
			}
			if st := central.Stats(); st.LinksAccepted != 1 || st.DatagramsIn == 0 || st.DroppedInbound+st.DroppedQueueFull+st.DroppedNoRoute != 0 {
				t.Fatalf("central stats %+v", st)
			}
		})
	}
}
