package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testDomain    = "domain: {ca_cert: a, ca_key: b, registrar_cert: c, registrar_key: d, records_cert: e, records_key: f}\n"
	testRegistrar = "registrar: {manufacturers: [m.pem]}\n"
	testJPY       = "registrar: {manufacturers: [m.pem], jpy_listen: '[::]:7634'}\n"
)

// Every link field is checked, and a bad one is named.
func TestValidateLinksNamesTheField(t *testing.T) {
	base := testDomain + testRegistrar
	for _, tc := range []struct{ doc, field string }{
		{testDomain + "registrar: {manufacturers: [m.pem], jpy_listen: nowhere}\n", "registrar.jpy_listen"},
		{testDomain + "registrar: {manufacturers: [m.pem], jpy_listen: 'h:port'}\n", "registrar.jpy_listen"},
		{base + "joinproxy: {listen: nowhere}\n", "joinproxy.listen"},
		{base + "joinproxy: {listen: ':8485', mode: sideways}\n", "joinproxy.mode"},
		{base + "joinproxy: {mode: sideways}\n", "joinproxy.mode"},
		// Stateless needs the registrar's JPY endpoint: the message says which field to set.
		{base + "joinproxy: {listen: ':8485', mode: stateless}\n", "registrar.jpy_listen"},
		{base + "joinproxy: {listen: ':8485', mode: stateless}\n", "joinproxy.mode"},
		{base + "joinproxy: {listen: ':8485', discovery_listen: nowhere}\n", "joinproxy.discovery_listen"},
		{base + "joinproxy: {discovery_listen: ':5683'}\n", "joinproxy.discovery_listen"},
		{base + "joinproxy: {state_timeout: 0s}\n", "joinproxy.state_timeout"},
		{base + "joinproxy: {per_pledge: 0}\n", "joinproxy.per_pledge"},
		{base + "joinproxy: {per_pledge: 3, per_interface: 2}\n", "joinproxy.per_interface"},
		{base + "joinproxy: {key_rotation: 10ms}\n", "joinproxy.key_rotation"},
		{base + "joinproxy: {colour: blue}\n", "colour"},
		{base + "thread: {border_agent: ba}\n", "thread.border_agent"},
		{base + "thread: {border_agent: 'ba:0'}\n", "thread.border_agent"},
		{base + "thread: {border_agent: 'ba:x'}\n", "thread.border_agent"},
		{base + "thread: {commissioner_id: ''}\n", "thread.commissioner_id"},
		{base + "thread: {commissioner_id: '" + strings.Repeat("x", 65) + "'}\n", "thread.commissioner_id"},
		{base + "thread: {key: k.pem}\n", "thread.key"},
		{base + "thread: {certificate: c.pem}\n", "thread.key"},
		{base + "thread: {steering: []}\n", "thread.steering"},
		{base + "thread: {steering: [nmkp]}\n", "thread.steering[0]"},
		{base + "thread: {steering: [ae, ae]}\n", "thread.steering[1]"},
		{base + "thread: {keep_alive_min: 0s}\n", "thread.keep_alive_min"},
		{base + "thread: {keep_alive_max: 50s}\n", "thread.keep_alive_max"},
		{base + "thread: {keep_alive_min: 40s, keep_alive_max: 35s}\n", "thread.keep_alive_max"},
		{base + "thread: {backoff_min: 0s}\n", "thread.backoff_min"},
		{base + "thread: {backoff_min: 2m, backoff_max: 1m}\n", "thread.backoff_max"},
		{base + "thread: {max_joiners: 0}\n", "thread.max_joiners"},
		{base + "ble: {adapter: 'hci0/x'}\n", "ble.adapter"},
		{base + "ble: {max_links: 0}\n", "ble.max_links"},
	} {
		_, err := Parse([]byte(tc.doc), "/x")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: %v, want a message naming %s", tc.doc, err, tc.field)
		}
	}
}

// Without the bluez build tag a configured adapter is a configuration
// error that says how to get BlueZ support.
func TestBLEAdapterNeedsTheBuildTag(t *testing.T) {
	_, err := Parse([]byte(testDomain+testRegistrar+"ble: {adapter: hci0}\n"), "/x")
	if bluezBuilt {
		if err != nil {
			t.Fatalf("bluez build: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "ble.adapter") || !strings.Contains(err.Error(), "-tags bluez") {
		t.Fatalf("adapter without BlueZ: %v", err)
	}
}

// A full link configuration parses; lists replace their defaults.
func TestLinksConfigParses(t *testing.T) {
	cfg, err := Parse([]byte(testDomain+testJPY+`
joinproxy: {listen: '[fe80::1%wpan0]:8485', mode: stateless, discovery_listen: '[fe80::1%wpan0]:5683', key_rotation: 1h}
thread: {border_agent: 'otbr.local:49191', commissioner_id: gw-1, steering: [ae], keep_alive_min: 35s, keep_alive_max: 40s}
`), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Thread.Steering, []string{SteeringAE}) {
		t.Errorf("steering %v, want [ae] alone", cfg.Thread.Steering)
	}
	if cfg.JoinProxy.KeyRotation != time.Hour || cfg.JoinProxy.PerPledge != 2 || cfg.Thread.MaxJoiners != 100 {
		t.Errorf("defaults lost: %+v %+v", cfg.JoinProxy, cfg.Thread)
	}
	// Off by default.
	d := Defaults()
	if d.Registrar.JPYListen != "" || d.JoinProxy.Listen != "" || d.Thread.BorderAgent != "" || d.BLE.Adapter != "" {
		t.Errorf("a link is on by default: %+v", d)
	}
}

// The Thread credential files are loaded by New and named when missing.
func TestNewNamesThreadCredentialFiles(t *testing.T) {
	dir := t.TempDir()
	path, err := Init(filepath.Join(dir, "gw"), InitOptions{Manufacturers: []string{filepath.Join(dir, "mfr.pem")}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Thread.BorderAgent = "127.0.0.1:49191"
	for _, tc := range []struct {
		set   func(*ThreadConfig)
		field string
	}{
		{func(c *ThreadConfig) { c.Certificate, c.Key = "missing.pem", "missing.key" }, "thread.certificate"},
		{func(c *ThreadConfig) { c.Certificate, c.Key = FileRegistrar, FileDomainCAKey }, "thread.key"},
		{func(c *ThreadConfig) { c.CA = "missing.pem" }, "thread.ca"},
	} {
		c := cfg
		tc.set(&c.Thread)
		if _, err := New(context.Background(), c); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}

func TestLocal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[::]:5684", "[::1]:5684"},
		{"0.0.0.0:5684", "127.0.0.1:5684"},
		{"192.0.2.7:5684", "192.0.2.7:5684"},
		{"[fe80::1%wpan0]:7634", "[fe80::1%wpan0]:7634"},
	} {
		a := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.in))
		if got := local(a).String(); got != tc.want {
			t.Errorf("local(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
