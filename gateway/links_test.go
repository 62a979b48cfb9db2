package gateway_test

// End-to-end tests of the links gateway.Run serves from configuration:
// unchanged testbed pledges onboard through a stateful and a stateless
// join proxy, the registrar's JPY endpoint, a simulated Thread Border
// Agent (over loopback UDP) and the simulated BLE air. The package is
// gateway_test because testbed/masa and friends are what the testbed
// builds on; everything runs on loopback.

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	blesim "github.com/tumbler-iot/tumbler/ble/sim"
	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/masa"
	"github.com/tumbler-iot/tumbler/testbed/mote"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	threadsim "github.com/tumbler-iot/tumbler/thread/sim"
)

// fixture is a lab MASA and a gateway running gateway.Run.
type fixture struct {
	dir   string
	masa  *masa.MASA
	gw    *gateway.Gateway
	addrs map[string]net.Addr
	stop  func(t *testing.T) // stops the gateway (Run returns), then the MASA
}

func startGateway(t *testing.T, ctx context.Context, configure func(*gateway.Config), opts ...gateway.Option) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	mctx, mcancel := context.WithCancel(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mpath, err := masa.Init(filepath.Join(f.dir, "masa"), ln.Addr().String(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mcfg, err := masa.LoadConfig(mpath)
	if err != nil {
		t.Fatal(err)
	}
	m, tlsCert, err := masa.Open(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	f.masa = m
	masaDone := make(chan error, 1)
	go func() { masaDone <- m.ServeTLS(mctx, ln, tlsCert) }()
	stopMASA := func(t *testing.T) {
		mcancel()
		if err := <-masaDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("masa: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}

	mfr := filepath.Join(f.dir, "masa", masa.FileCA)
	path, err := gateway.Init(filepath.Join(f.dir, "gw"), gateway.InitOptions{
		Manufacturers: []string{mfr}, MASACA: mfr, MASAURL: m.URL(), Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
	})
	if err != nil {
		stopMASA(t)
		t.Fatal(err)
	}
	cfg, err := gateway.Load(path)
	if err != nil {
		stopMASA(t)
		t.Fatal(err)
	}
	if configure != nil {
		configure(&cfg)
	}
	gw, err := gateway.New(ctx, cfg, append([]gateway.Option{gateway.WithLogger(testLog(t))}, opts...)...)
	if err != nil {
		stopMASA(t)
		t.Fatal(err)
	}
	f.gw = gw
	rctx, rcancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- gw.Run(rctx) }()
	f.stop = func(t *testing.T) {
		t.Helper()
		rcancel()
		select {
		case err := <-runDone:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
		if err := gw.Close(); err != nil {
			t.Error(err)
		}
		stopMASA(t)
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if f.addrs, err = gw.Listening(lctx); err != nil {
		select {
		case rerr := <-runDone:
			err = rerr
		default:
		}
		rcancel()
		stopMASA(t)
		t.Fatalf("gateway not listening: %v", err)
	}
	return f
}

// onboard runs one unchanged testbed pledge to enrollment through addr.
func (f *fixture) onboard(t *testing.T, ctx context.Context, serial string, listen func() (net.PacketConn, error), addr net.Addr) {
	t.Helper()
	cert, key, err := f.masa.IssueIDevID(serial)
	if err != nil {
		t.Fatal(err)
	}
	p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: f.masa.CA()},
		mote.Config{Log: testLog(t), Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	enr, _, err := p.Onboard(ctx, addr)
	if err != nil {
		t.Fatalf("%s: %v", serial, err)
	}
	if enr.LDevID.Subject.SerialNumber != serial {
		t.Fatalf("%s: LDevID for %q", serial, enr.LDevID.Subject.SerialNumber)
	}
}

func loopback() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

// metric returns the value of the sample of name whose labels include
// want, or -1.
func metric(t *testing.T, gw *gateway.Gateway, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			n := 0
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
					n++
				}
			}
			if n == len(want) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// discover asks a plain CoAP endpoint for its links matching query.
func discover(t *testing.T, ctx context.Context, addr net.Addr, query string) string {
	t.Helper()
	pc, err := loopback()
	if err != nil {
		t.Fatal(err)
	}
	c, err := coap.DialUDP(ctx, pc, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Do(ctx, &coap.Request{Method: codes.GET, Path: coap.WellKnownCore, Query: []string{query}})
	if err != nil {
		t.Fatal(err)
	}
	return string(resp.Payload)
}

func port(a net.Addr) int { return a.(*net.UDPAddr).Port }

// A pledge finds the border router's join port by discovery and onboards
// through the stateful join proxy, which relays to registrar.listen.
func TestRunStatefulJoinProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MASA and a gateway")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := startGateway(t, ctx, func(c *gateway.Config) {
		c.JoinProxy.Listen = "127.0.0.1:0"
		c.JoinProxy.DiscoveryListen = "127.0.0.1:0"
	})
	defer f.stop(t)

	jp := f.addrs["joinproxy.listen"]
	cert, key, err := f.masa.IssueIDevID("JP-DISCOVER")
	if err != nil {
		t.Fatal(err)
	}
	p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: f.masa.CA()}, mote.Config{Listen: loopback})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Discover(ctx, f.addrs["joinproxy.discovery_listen"])
	if err != nil {
		t.Fatal(err)
	}
	if port(got) != port(jp) {
		t.Fatalf("discovered join port %v, want %v", got, jp)
	}
	f.onboard(t, ctx, "JP-STATEFUL-1", loopback, got)
	f.onboard(t, ctx, "JP-STATEFUL-2", loopback, jp)
	if up := metric(t, f.gw, "tumbler_joinproxy_datagrams_total", map[string]string{"mode": "stateful", "direction": "up"}); up <= 0 {
		t.Errorf("stateful join proxy relayed %v datagrams up", up)
	}
	if n := metric(t, f.gw, "tumbler_coap_responses_total", map[string]string{"port": "joinproxy-discovery"}); n <= 0 {
		t.Errorf("join proxy discovery metrics: %v", n)
	}
}

// The registrar's JPY endpoint serves pledges behind the stateless join
// proxy, and discovery announces it as rt=brski.rjp, not as a join port.
func TestRunStatelessJoinProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MASA and a gateway")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := startGateway(t, ctx, func(c *gateway.Config) {
		c.Registrar.JPYListen = "127.0.0.1:0"
		c.JoinProxy.Listen = "127.0.0.1:0"
		c.JoinProxy.Mode = gateway.JoinProxyStateless
	})
	defer f.stop(t)

	jpy := f.addrs["registrar.jpy_listen"]
	want := fmt.Sprintf("<jpy://127.0.0.1:%d>;rt=brski.rjp", port(jpy))
	if got := discover(t, ctx, f.addrs["discovery"], "rt=brski.rjp"); got != want {
		t.Errorf("rt=brski.rjp: %q, want %q", got, want)
	}
	jps := discover(t, ctx, f.addrs["discovery"], "brski-jp=*")
	if !strings.Contains(jps, fmt.Sprintf("brski-jp=%d", port(f.addrs["registrar.listen"]))) || strings.Contains(jps, fmt.Sprint(port(jpy))) {
		t.Errorf("brski-jp=*: %q: want the CoAPS port and not the JPY port", jps)
	}

	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { f.onboard(t, ctx, fmt.Sprintf("JPY-%d", i), loopback, f.addrs["joinproxy.listen"]) })
	}
	wg.Wait()
	for _, mode := range []string{"stateless", "registrar"} {
		if up := metric(t, f.gw, "tumbler_joinproxy_datagrams_total", map[string]string{"mode": mode, "direction": "up"}); up <= 0 {
			t.Errorf("%s: %v datagrams up", mode, up)
		}
	}
	if n := metric(t, f.gw, "tumbler_joinproxy_active", map[string]string{"mode": "registrar"}); n < 2 {
		t.Errorf("registrar JPY peers %v, want one per pledge at least", n)
	}
}

// With thread.border_agent the gateway petitions the Border Agent as a
// CCM commissioner, publishes permit-all steering data, serves CCM
// joiners relayed by the Joiner Router, and resigns when it stops.
func TestRunThreadCommissioner(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MASA, a gateway and a Border Agent")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The Border Agent listens first, on loopback UDP; its certificate
	// comes from the gateway's domain CA, so it is made once the gateway's
	// directory exists: configure runs between Init and New.
	baPC, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nw, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	bactx, bacancel := context.WithCancel(ctx)
	var ba *threadsim.BorderAgent
	var bawg sync.WaitGroup
	f := startGateway(t, ctx, func(c *gateway.Config) {
		ba = startBorderAgent(t, bactx, &bawg, c, baPC, nw)
		c.Thread.BorderAgent = baPC.LocalAddr().String()
		c.Thread.BackoffMin, c.Thread.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	})
	stopped := false
	defer func() {
		if !stopped {
			f.stop(t)
		}
		bacancel()
		bawg.Wait()
	}()

	deadline := time.Now().Add(10 * time.Second)
	for {
		id, _, sd, ok := ba.Commissioner()
		if ok && id == "Tumbler" && sd.AllowsAll() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not the active commissioner: %q %v %v", id, sd, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := metric(t, f.gw, "tumbler_thread_commissioner_active", nil); a != 1 {
		t.Errorf("commissioner_active %v", a)
	}

	eui, _ := meshcop.ParseEUI64("18b4300000000007")
	joiner := threadsim.JoinerAddr(meshcop.JoinerIDFromEUI64(eui))
	f.onboard(t, ctx, "THREAD-18b4300000000007", func() (net.PacketConn, error) { return nw.Listen(joiner) },
		radio.Addr(ba.JoinerRouterAddr()))
	if up := metric(t, f.gw, "tumbler_thread_relay_datagrams_total", map[string]string{"direction": "up"}); up <= 0 {
		t.Errorf("relay up %v", up)
	}
	if j := metric(t, f.gw, "tumbler_thread_relay_joiners", nil); j != 1 {
		t.Errorf("relay joiners %v", j)
	}

	// Stopping the gateway resigns: the leader has no commissioner.
	f.stop(t)
	stopped = true
	if id, _, _, ok := ba.Commissioner(); ok {
		t.Errorf("commissioner %q still active after shutdown", id)
	}
}

// startBorderAgent runs a simulated CCM Border Agent on baPC and its
// Joiner Router on nw, with a certificate from the gateway's domain CA.
func startBorderAgent(t *testing.T, ctx context.Context, wg *sync.WaitGroup, c *gateway.Config, baPC net.PacketConn, nw *radio.Network) *threadsim.BorderAgent {
	t.Helper()
	caCerts, err := pki.LoadCerts(c.Path(c.Domain.CACert))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.LoadKey(c.Path(c.Domain.CAKey))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewRegistrarCert(time.Now(), &pki.Issuer{Cert: caCerts[0], Key: caKey}, key.Public(),
		pki.Profile{Subject: pkix.Name{CommonName: "Border Agent"}})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCerts[0])
	ba, err := threadsim.New(threadsim.Config{
		Certificate: tlsCert(cert, caCerts[0], key), ClientCAs: pool, Log: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	jr, err := nw.Listen(ba.JoinerRouterAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, serve := range []func() error{
		func() error { return ba.Serve(ctx, baPC) },
		func() error { return ba.ServeJoiners(ctx, jr) },
	} {
		wg.Go(func() {
			if err := serve(); err != nil {
				t.Errorf("border agent: %v", err)
			}
		})
	}
	return ba
}

// A BLE pledge onboards through the central RunServices serves on the
// link source (here the simulated air; with ble.adapter, BlueZ).
func TestRunBLE(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MASA and a gateway")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	air, err := blesim.NewNetwork(blesim.WithSeed(1), blesim.WithATTMTU(23, 247))
	if err != nil {
		t.Fatal(err)
	}
	defer air.Close()
	f := startGateway(t, ctx, nil, gateway.WithBLELinks(air))
	defer f.stop(t)
	f.onboard(t, ctx, "BLE-1", air.Listen("BLE-1"), air.CentralAddr())
	if up := metric(t, f.gw, "tumbler_ble_datagrams_total", map[string]string{"direction": "up"}); up <= 0 {
		t.Errorf("BLE datagrams up %v", up)
	}
	if n := metric(t, f.gw, "tumbler_ble_links_total", map[string]string{"result": "accepted"}); n < 1 {
		t.Errorf("BLE links accepted %v", n)
	}
}

// An address already in use fails Run with its field named, and nothing
// is left listening.
func TestRunNamesTheBusyAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MASA")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	path, err := gateway.Init(dir, gateway.InitOptions{Manufacturers: []string{writeCA(t, dir)}, Listen: "127.0.0.1:0", AdminListen: ""})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Listen = ""
	cfg.Registrar.JPYListen = "127.0.0.1:0"
	cfg.JoinProxy.Listen = busy.LocalAddr().String()
	gw, err := gateway.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if err := gw.Run(ctx); !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), "joinproxy.listen") {
		t.Fatalf("Run: %v", err)
	}
}

func writeCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "Manufacturer"}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mfr.pem")
	if err := pki.WriteNew(path, pki.EncodeCerts(ca), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func tlsCert(leaf, ca *x509.Certificate, key crypto.Signer) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: key, Leaf: leaf}
}

func testLog(t *testing.T) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}
