package gateway

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInitThenLoad(t *testing.T) {
	dir := t.TempDir()
	mfr := filepath.Join(dir, "mfr.pem")
	path, err := Init(filepath.Join(dir, "gw"), InitOptions{Manufacturers: []string{mfr}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(filepath.Join(dir, "gw"), InitOptions{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second init: %v", err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EST.Validity != 2*365*24*time.Hour || cfg.MASA.Timeout != 20*time.Second {
		t.Errorf("durations did not round-trip: %+v %+v", cfg.EST, cfg.MASA)
	}
	if cfg.Path(cfg.Domain.CAKey) != filepath.Join(dir, "gw", FileDomainCAKey) {
		t.Errorf("relative path resolved to %q", cfg.Path(cfg.Domain.CAKey))
	}
	if fi, _ := os.Stat(cfg.Path(cfg.Domain.CAKey)); fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v", fi.Mode())
	}
	// The manufacturer file does not exist: New names the field.
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "registrar.manufacturers[0]") {
		t.Errorf("missing manufacturer file: %v", err)
	}
}

// A malformed configuration is refused with the field named.
func TestValidateNamesTheField(t *testing.T) {
	const (
		domain    = "domain: {ca_cert: a, ca_key: b, registrar_cert: c, registrar_key: d, records_cert: e, records_key: f}\n"
		registrar = "registrar: {manufacturers: [m.pem]}\n"
	)
	if _, err := Parse([]byte(domain+registrar), "/x"); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tc := range []struct{ doc, field string }{
		{domain + registrar + "id: 'a/b'\n", "id:"},
		{domain + "registrar: {manufacturers: [m.pem], policy: closed}\n", "registrar.policy"},
		{domain + "registrar: {manufacturers: []}\n", "registrar.manufacturers"},
		{domain + "registrar: {manufacturers: [m.pem], listen: nowhere}\n", "registrar.listen"},
		{domain + "registrar: {manufacturers: [m.pem], mtu: 100}\n", "registrar.mtu"},
		{domain + registrar + "masa: {url: 'http://masa'}\n", "masa.url"},
		{domain + registrar + "masa: {timeout: 0s}\n", "masa.timeout"},
		{domain + registrar + "est: {validity: 1m}\n", "est.validity"},
		{domain + registrar + "log: {level: loud}\n", "log.level"},
		{domain + registrar + "admin: {listen: ':x:'}\n", "admin.listen"},
		{domain + registrar + "colour: blue\n", "colour"},
		{"domain: {ca_cert: a, ca_key: b, registrar_cert: c, records_cert: e, records_key: f}\n" + registrar, "domain.registrar_key"},
		{domain + registrar + "checkin: {classes: {default: {interval: 10ms}}}\n", "checkin.classes.default.interval"},
		{domain + registrar + "upstream: [{name: a, mqtt: {url: 'http://broker'}}]\n", "upstream[0].mqtt.url"},
		{domain + registrar + "upstream: [{name: a, mqtt: {url: 'mqtt://b'}}, {name: a, mqtt: {url: 'mqtt://c'}}]\n", "upstream[1].name"},
		{domain + registrar + "upstream: [{name: h, webhook: {url: 'https://x', secret: short}}]\n", "upstream[0].webhook.secret"},
		{domain + registrar + "upstream: [{name: n}]\n", "upstream[0]"},
		{domain + registrar + "outbox: {prune: 0s}\n", "outbox.prune"},
		{domain + registrar + "checkin: {classes: {default: {interval: 1h}, sensor: {interval: 1h}}}\n", "checkin.classes.sensor.serial_prefix"},
	} {
		_, err := Parse([]byte(tc.doc), "/x")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: %v, want a message naming %s", tc.doc, err, tc.field)
		}
	}
}
