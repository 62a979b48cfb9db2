// Package gateway is the Tumbler daemon: it loads gateway.yaml, opens the
// store, and wires links -> coap -> services (registrar, EST) -> store.
package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/checkin"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
)

// Config is gateway.yaml. Relative paths are relative to the file.
type Config struct {
	// ID names this gateway in records and upstream topics.
	ID string `yaml:"id"`
	// Store is the SQLite database file.
	Store string `yaml:"store"`

	Domain    DomainConfig          `yaml:"domain"`
	Registrar RegistrarConfig       `yaml:"registrar"`
	MASA      MASAConfig            `yaml:"masa"`
	EST       ESTConfig             `yaml:"est"`
	Checkin   checkin.Config        `yaml:"checkin"`
	Upstream  []upstream.SinkConfig `yaml:"upstream"`
	Outbox    OutboxConfig          `yaml:"outbox"`
	Ownership OwnershipConfig       `yaml:"ownership"`
	Admin     AdminConfig           `yaml:"admin"`
	Log       LogConfig             `yaml:"log"`

	dir string // directory of the file, for relative paths
}

// DomainConfig holds the domain PKI: the CA that issues LDevIDs and the
// registrar's certificate.
type DomainConfig struct {
	CACert        string `yaml:"ca_cert"`
	CAKey         string `yaml:"ca_key"`
	RegistrarCert string `yaml:"registrar_cert"` // chain: registrar first, then CAs
	RegistrarKey  string `yaml:"registrar_key"`
	// RecordsCert/RecordsKey sign the gateway's event records; anyone with
	// the certificate (or its public key) can verify them.
	RecordsCert string `yaml:"records_cert"`
	RecordsKey  string `yaml:"records_key"`
}

// RegistrarConfig is the cBRSKI registrar and its CoAP endpoints.
type RegistrarConfig struct {
	// Listen is the CoAPS (DTLS) UDP address pledges reach.
	Listen string `yaml:"listen"`
	// Policy is "open" or "expected".
	Policy string `yaml:"policy"`
	// Manufacturers are PEM files of the CAs whose IDevIDs are trusted.
	Manufacturers []string `yaml:"manufacturers"`
	// MTU for DTLS records (cBRSKI assumes a 1024-byte PMTU).
	MTU int `yaml:"mtu"`
	// MaxPeers bounds concurrent DTLS sessions.
	MaxPeers int `yaml:"max_peers"`
}

// MASAConfig is how the registrar reaches MASAs.
type MASAConfig struct {
	// URL is used when an IDevID has no MASA URL extension.
	URL string `yaml:"url"`
	// CA is a PEM file of trust anchors for MASA server certificates
	// (empty: the system roots).
	CA string `yaml:"ca"`
	// Timeout bounds one voucher round trip.
	Timeout time.Duration `yaml:"timeout"`
}

// ESTConfig is the EST-coaps CA.
type ESTConfig struct {
	// Validity of issued LDevIDs.
	Validity time.Duration `yaml:"validity"`
}

// OwnershipConfig tunes the lifecycle operations.
type OwnershipConfig struct {
	// TransferPoll is how often pending transfers are checked at the MASA.
	TransferPoll time.Duration `yaml:"transfer_poll"`
	// TransferValidity is the default lifetime of a transfer
	// authorisation.
	TransferValidity time.Duration `yaml:"transfer_validity"`
	// DelegationPoll is how often delegations are ended at their time (a
	// delegation ends at most this long after it).
	DelegationPoll time.Duration `yaml:"delegation_poll"`
}

// AdminConfig is the admin endpoint: the device API (gateway/api),
// /metrics, /healthz and /crl.
type AdminConfig struct {
	// Listen address; empty disables it. Loopback by default.
	Listen string `yaml:"listen"`
	// Tokens, TLS and metrics access (api.Config). Without tokens only
	// /healthz, /metrics and /crl are served and the device API is off.
	api.Config `yaml:",inline"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // console or json
}

// Defaults returns a configuration with every default filled in.
func Defaults() Config {
	return Config{
		ID:        "tumbler",
		Store:     "tumbler.db",
		Registrar: RegistrarConfig{Listen: "[::]:5684", Policy: string(registrar.Open), MTU: 1024, MaxPeers: 4096},
		MASA:      MASAConfig{Timeout: 20 * time.Second},
		EST:       ESTConfig{Validity: 2 * 365 * 24 * time.Hour},
		Checkin:   checkin.Defaults(),
		Outbox:    OutboxConfig{MaxRecords: 1_000_000, MaxAge: 30 * 24 * time.Hour, Prune: time.Minute},
		Ownership: OwnershipConfig{TransferPoll: time.Minute, TransferValidity: 7 * 24 * time.Hour, DelegationPoll: 5 * time.Second},
		Admin:     AdminConfig{Listen: "127.0.0.1:8484"},
		Log:       LogConfig{Level: "info", Format: "console"},
	}
}

// ErrConfig marks configuration errors; the message names the field.
var ErrConfig = errors.New("invalid configuration")

func fieldErr(field, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
}

// Load reads a gateway.yaml: unknown fields are errors, defaults fill what
// is absent, and the result is validated.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML with relative paths resolved against dir.
func Parse(b []byte, dir string) (Config, error) {
	cfg := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	cfg.dir = dir
	return cfg, cfg.Validate()
}

// Path resolves a configured path against the configuration's directory.
func (c Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	if c.ID == "" || strings.ContainsAny(c.ID, "/+# ") {
		return fieldErr("id", "%q must be non-empty without '/', '+', '#' or spaces (it is an MQTT topic level)", c.ID)
	}
	if c.Store == "" {
		return fieldErr("store", "a database file is required")
	}
	for _, f := range []struct{ name, v string }{
		{"domain.ca_cert", c.Domain.CACert}, {"domain.ca_key", c.Domain.CAKey},
		{"domain.registrar_cert", c.Domain.RegistrarCert}, {"domain.registrar_key", c.Domain.RegistrarKey},
		{"domain.records_cert", c.Domain.RecordsCert}, {"domain.records_key", c.Domain.RecordsKey},
	} {
		if f.v == "" {
			return fieldErr(f.name, "required (tumbler init writes it)")
		}
	}
	if _, _, err := net.SplitHostPort(c.Registrar.Listen); err != nil {
		return fieldErr("registrar.listen", "%q is not host:port", c.Registrar.Listen)
	}
	switch registrar.Policy(c.Registrar.Policy) {
	case registrar.Open, registrar.Expected:
	default:
		return fieldErr("registrar.policy", "%q is not one of open, expected", c.Registrar.Policy)
	}
	if len(c.Registrar.Manufacturers) == 0 {
		return fieldErr("registrar.manufacturers", "at least one manufacturer CA file is required")
	}
	if c.Registrar.MTU < 256 || c.Registrar.MTU > 65535 {
		return fieldErr("registrar.mtu", "%d is outside 256..65535", c.Registrar.MTU)
	}
	if c.Registrar.MaxPeers < 1 {
		return fieldErr("registrar.max_peers", "%d must be positive", c.Registrar.MaxPeers)
	}
	if c.MASA.URL != "" {
		if _, err := pki.NormalizeMASAURL(c.MASA.URL); err != nil {
			return fieldErr("masa.url", "%v", err)
		}
	}
	if c.MASA.Timeout <= 0 {
		return fieldErr("masa.timeout", "must be positive")
	}
	if c.EST.Validity < time.Hour {
		return fieldErr("est.validity", "%v is shorter than an hour", c.EST.Validity)
	}
	if err := c.Checkin.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := upstream.ValidateSinks(c.Upstream); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := validateOutbox(c.Outbox); err != nil {
		return err
	}
	if c.Ownership.TransferPoll <= 0 {
		return fieldErr("ownership.transfer_poll", "must be positive")
	}
	if c.Ownership.DelegationPoll <= 0 {
		return fieldErr("ownership.delegation_poll", "must be positive")
	}
	if c.Ownership.TransferValidity < time.Minute {
		return fieldErr("ownership.transfer_validity", "%v is shorter than a minute", c.Ownership.TransferValidity)
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			return fieldErr("admin.listen", "%q is not host:port", c.Admin.Listen)
		}
	}
	if len(c.Admin.Tokens) > 0 || c.Admin.TLSCertFile != "" || c.Admin.TLSKeyFile != "" {
		if err := c.Admin.Config.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		return fieldErr("log.format", "%q is not one of console, json", c.Log.Format)
	}
	return nil
}
