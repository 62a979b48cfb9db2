package coap_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/internal/testpki"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every network test.
const testTimeout = 10 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// link creates PacketConns on one medium: the in-memory radio or loopback
// UDP. Everything above it is the same code.
type link interface {
	server(t testing.TB) net.PacketConn
	client(t testing.TB) net.PacketConn
}

type radioLink struct {
	net *radio.Network
	n   atomic.Int64
}

func newRadioLink(t testing.TB, opts ...radio.Option) *radioLink {
	t.Helper()
	n, err := radio.NewNetwork(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &radioLink{net: n}
}

func (l *radioLink) server(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := l.net.Listen(fmt.Sprintf("gw-%d:5684", l.n.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

func (l *radioLink) client(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := l.net.Listen(fmt.Sprintf("mote-%d:49152", l.n.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

type udpLink struct{}

func (udpLink) server(t testing.TB) net.PacketConn { return listenLoopback(t) }
func (udpLink) client(t testing.TB) net.PacketConn { return listenLoopback(t) }

func listenLoopback(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// links are the media every end-to-end test runs on.
func links(t *testing.T) []struct {
	name string
	link link
} {
	return []struct {
		name string
		link link
	}{
		{"radio", newRadioLink(t)},
		{"loopback", udpLink{}},
	}
}

// pki is the test PKI: a manufacturer root with an intermediate issuing
// pledge certificates, a domain CA for the registrar, and a foreign CA.
type pki struct {
	manufacturer *testpki.CA
	idevidCA     *testpki.CA
	domain       *testpki.CA
	foreign      *testpki.CA
	registrar    tls.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  *pki
	pkiErr  error
)

func testPKI(t testing.TB) *pki {
	t.Helper()
	pkiOnce.Do(func() {
		p := &pki{}
		if p.manufacturer, pkiErr = testpki.NewRoot("Manufacturer Root CA"); pkiErr != nil {
			return
		}
		if p.idevidCA, pkiErr = p.manufacturer.Intermediate("Manufacturer IDevID CA"); pkiErr != nil {
			return
		}
		if p.domain, pkiErr = testpki.NewRoot("Domain CA"); pkiErr != nil {
			return
		}
		if p.foreign, pkiErr = testpki.NewRoot("Someone Else's CA"); pkiErr != nil {
			return
		}
		p.registrar, pkiErr = p.domain.Server("registrar.example")
		pkiVal = p
	})
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func (p *pki) pledge(t testing.TB, serial string) tls.Certificate {
	t.Helper()
	c, err := p.idevidCA.Client(serial)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *pki) dtlsConfig() coap.DTLSConfig {
	return coap.DTLSConfig{Certificate: p.registrar, ClientCAs: p.manufacturer.Pool()}
}

// recorder is a test handler: a Mux with resources for every case, which
// records the requests it served.
type recorder struct {
	*coap.Mux
	mu   sync.Mutex
	seen []*coap.Request
}

// Causes that must reach the log but never the wire.
var (
	errSerialCause = errors.New("secret: PVR serial 1234 != IDevID serial 5678")
	errDatabase    = errors.New("secret: database is on fire")
)

var bigBody = bytes.Repeat([]byte("tumbler-"), 512) // 4 KiB

func newRecorder() *recorder {
	r := &recorder{Mux: coap.NewMux()}
	r.HandleFunc("/hello", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		return coap.Content(coap.FormatText, []byte("hello")), nil
	}, coap.Link{})
	r.HandleFunc("/echo", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		return coap.Changed(req.ContentFormat, req.Payload), nil
	}, coap.Link{}, codes.POST)
	r.HandleFunc("/big", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		return coap.Content(coap.FormatCBOR, bigBody), nil
	}, coap.Link{})
	r.HandleFunc("/forbidden", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		return nil, coap.Errorf(codes.Forbidden, "serial mismatch", errSerialCause)
	}, coap.Link{}, codes.POST)
	r.HandleFunc("/boom", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		return nil, errDatabase
	}, coap.Link{}, codes.POST)
	r.HandleFunc("/panic", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		panic("secret: handler bug")
	}, coap.Link{})
	r.HandleFunc("/empty", func(_ context.Context, req *coap.Request) (*coap.Response, error) {
		r.record(req)
		return nil, nil
	}, coap.Link{}, codes.POST)
	return r
}

func (r *recorder) record(req *coap.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, req)
}

func (r *recorder) requests() []*coap.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*coap.Request(nil), r.seen...)
}

// serving is a running server.
type serving struct {
	srv  *coap.Server
	addr net.Addr
	reg  *prometheus.Registry
	done chan error
}

type serveFunc func(*coap.Server, context.Context, net.PacketConn) error

func serveDTLS(s *coap.Server, ctx context.Context, pc net.PacketConn) error {
	return s.ServeDTLS(ctx, pc)
}

func serveUDP(s *coap.Server, ctx context.Context, pc net.PacketConn) error {
	return s.ServeUDP(ctx, pc)
}

// start runs a server on a new server PacketConn of l and stops it at the
// end of the test, checking that Serve returned nil.
func start(t *testing.T, l link, serve serveFunc, h coap.Handler, opts ...coap.ServerOption) *serving {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := coap.NewServer(h, append([]coap.ServerOption{coap.WithMetrics(reg)}, opts...)...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	pc := l.server(t)
	s := &serving{srv: srv, addr: pc.LocalAddr(), reg: reg, done: make(chan error, 1)}
	ctx := testContext(t)
	go func() { s.done <- serve(srv, ctx, pc) }()
	t.Cleanup(func() {
		_ = srv.Close()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("Serve did not return after Close")
		}
	})
	return s
}

// metric returns the value of the metric name with the given labels, or 0.
func (s *serving) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func matchLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or the test times out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dialDTLS dials s with a pledge certificate.
func dialDTLS(t testing.TB, l link, s *serving, cert tls.Certificate, opts ...coap.ClientOption) *coap.Client {
	t.Helper()
	c, err := coap.DialDTLS(testContext(t), l.client(t), s.addr, coap.ClientDTLSConfig{
		Certificate: cert,
		RootCAs:     testPKI(t).domain.Pool(),
	}, opts...)
	if err != nil {
		t.Fatalf("DialDTLS: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialUDP(t testing.TB, l link, s *serving, opts ...coap.ClientOption) *coap.Client {
	t.Helper()
	c, err := coap.DialUDP(testContext(t), l.client(t), s.addr, opts...)
	if err != nil {
		t.Fatalf("DialUDP: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// wantResponse checks code and payload of a response.
func wantResponse(t testing.TB, resp *coap.Response, err error, code codes.Code, payload []byte) {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if resp.Code != code {
		t.Fatalf("code %v (%q), want %v", resp.Code, resp.Payload, code)
	}
	if payload != nil && !bytes.Equal(resp.Payload, payload) {
		t.Fatalf("payload %d bytes %q..., want %d bytes %q...", len(resp.Payload), head(resp.Payload), len(payload), head(payload))
	}
}

func head(b []byte) string {
	if len(b) > 32 {
		return string(b[:32])
	}
	return string(b)
}

// leaks reports whether a diagnostic leaks something marked secret.
func leaks(payload []byte) bool { return strings.Contains(string(payload), "secret") }

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// coapOption is a CoAP option in a Request.
type coapOption = message.Option
