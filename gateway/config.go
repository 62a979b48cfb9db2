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
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/coap/joinproxy"
	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/checkin"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/thread/commissioner"
	"github.com/tumbler-iot/tumbler/thread/relay"
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
	JoinProxy JoinProxyConfig       `yaml:"joinproxy"`
	Thread    ThreadConfig          `yaml:"thread"`
	BLE       BLEConfig             `yaml:"ble"`
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
	// MaxPeers bounds concurrent DTLS sessions (per link: registrar.listen,
	// the JPY endpoint, the Thread relay and BLE each have their own).
	MaxPeers int `yaml:"max_peers"`
	// JPYListen is the UDP address of the registrar's JPY endpoint, where
	// stateless join proxies elsewhere send their pledges' datagrams
	// wrapped in JPY messages (draft-ietf-anima-constrained-join-proxy
	// §"Stateless Join Proxy"); empty: off. It has no default port.
	JPYListen string `yaml:"jpy_listen"`
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
	// TransferPoll is how often pending transfers are checked at the MASA
	// and its claims feed read.
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

// JoinProxyConfig makes the border router a constrained join proxy
// (draft-ietf-anima-constrained-join-proxy) for pledges on a link: they
// reach its join port with link-local addresses and it relays their DTLS
// datagrams, untouched, to this gateway's registrar.
type JoinProxyConfig struct {
	// Listen is the join port on the pledge-facing link, e.g.
	// "[fe80::1%wpan0]:8485"; empty: off.
	Listen string `yaml:"listen"`
	// Mode is "stateful" (a UDP circuit per pledge to registrar.listen) or
	// "stateless" (JPY messages to registrar.jpy_listen, which it needs).
	Mode string `yaml:"mode"`
	// DiscoveryListen is a plain CoAP address (port 5683 on the link)
	// that answers "GET /.well-known/core?brski-jp=*" with the join port;
	// empty: off (pledges must be configured with the join port).
	DiscoveryListen string `yaml:"discovery_listen"`
	// StateTimeout ends a stateful circuit this long after its last
	// datagram (the draft's default: 30 s).
	StateTimeout time.Duration `yaml:"state_timeout"`
	// PerPledge and PerInterface bound stateful circuits per pledge
	// address and on the link (the draft's SHOULD: 2 and 10).
	PerPledge    int `yaml:"per_pledge"`
	PerInterface int `yaml:"per_interface"`
	// KeyRotation is how often the stateless JPY header key is replaced
	// (the draft's example: 24 h).
	KeyRotation time.Duration `yaml:"key_rotation"`
}

// Join proxy modes.
const (
	JoinProxyStateful  = "stateful"
	JoinProxyStateless = "stateless"
)

// ThreadConfig makes the gateway the Thread network's external
// commissioner in Commercial Commissioning Mode: it holds a DTLS session
// to the Border Agent, publishes steering data, and serves the CCM joiners
// the Joiner Routers relay to it (docs/decisions/0011-link-wiring.md).
type ThreadConfig struct {
	// BorderAgent is the Border Agent's DTLS (MeshCoP) service, host:port
	// (OpenThread publishes the port in the _meshcop._udp SRV record; it
	// is ephemeral unless configured); empty: Thread off.
	BorderAgent string `yaml:"border_agent"`
	// CommissionerID is sent in the petition (at most 64 bytes).
	CommissionerID string `yaml:"commissioner_id"`
	// Certificate and Key are the commissioner's DTLS credential; empty:
	// the registrar's (domain.registrar_cert, domain.registrar_key),
	// which the domain CA signs directly.
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// CA verifies the Border Agent's certificate; empty: the domain CA.
	CA string `yaml:"ca"`
	// Steering lists the steering data TLVs published: "meshcop" (Steering
	// Data, TLV 8) and/or "ae" (CCM Autonomous Enrollment Steering Data,
	// TLV 61).
	Steering []string `yaml:"steering"`
	// KeepAliveMin and KeepAliveMax bound the keep-alive interval (within
	// 1..45 s: the leader drops a silent commissioner after 50 s).
	KeepAliveMin time.Duration `yaml:"keep_alive_min"`
	KeepAliveMax time.Duration `yaml:"keep_alive_max"`
	// BackoffMin and BackoffMax bound the wait before redialling the
	// Border Agent or petitioning again.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// MaxJoiners bounds the joiners relayed at once.
	MaxJoiners int `yaml:"max_joiners"`
}

// Thread steering data TLVs (ThreadConfig.Steering), named as
// ot-commissioner's joiner types.
const (
	SteeringMeshCoP = "meshcop"
	SteeringAE      = "ae"
)

// BLEConfig makes the gateway the BLE central of pledges advertising
// Tumbler's onboarding service (docs/ble.md).
type BLEConfig struct {
	// Adapter is the BlueZ controller, e.g. "hci0"; empty: BLE off. It
	// needs a build with -tags bluez (Linux).
	Adapter string `yaml:"adapter"`
	// MaxLinks bounds the BLE sessions held at once.
	MaxLinks int `yaml:"max_links"`
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
		JoinProxy: defaultJoinProxy(),
		Thread:    defaultThread(),
		BLE:       BLEConfig{MaxLinks: ble.DefaultMaxLinks},
		Admin:     AdminConfig{Listen: "127.0.0.1:8484"},
		Log:       LogConfig{Level: "info", Format: "console"},
	}
}

// defaultJoinProxy is the join proxy off, with the draft's bounds.
func defaultJoinProxy() JoinProxyConfig {
	return JoinProxyConfig{
		Mode:         JoinProxyStateful,
		StateTimeout: joinproxy.DefaultStateTimeout,
		PerPledge:    joinproxy.DefaultPerPledge,
		PerInterface: joinproxy.DefaultPerInterface,
		KeyRotation:  joinproxy.DefaultKeyRotation,
	}
}

// defaultThread is Thread off, with ot-commissioner's timers.
func defaultThread() ThreadConfig {
	return ThreadConfig{
		CommissionerID: commissioner.DefaultID,
		Steering:       []string{SteeringMeshCoP, SteeringAE},
		KeepAliveMin:   commissioner.DefaultKeepAliveMin,
		KeepAliveMax:   commissioner.DefaultKeepAliveMax,
		BackoffMin:     commissioner.DefaultBackoffMin,
		BackoffMax:     commissioner.DefaultBackoffMax,
		MaxJoiners:     relay.DefaultMaxJoiners,
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
	if c.Registrar.JPYListen != "" {
		if err := checkHostPort(c.Registrar.JPYListen); err != nil {
			return fieldErr("registrar.jpy_listen", "%v", err)
		}
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
	if err := c.validateLinks(); err != nil {
		return err
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

// validateLinks checks the joinproxy, thread and ble sections.
func (c Config) validateLinks() error {
	jp := c.JoinProxy
	switch jp.Mode {
	case JoinProxyStateful, JoinProxyStateless:
	default:
		return fieldErr("joinproxy.mode", "%q is not one of %s, %s", jp.Mode, JoinProxyStateful, JoinProxyStateless)
	}
	if jp.Listen != "" {
		if err := checkHostPort(jp.Listen); err != nil {
			return fieldErr("joinproxy.listen", "%v", err)
		}
		if jp.Mode == JoinProxyStateless && c.Registrar.JPYListen == "" {
			return fieldErr("joinproxy.mode", "stateless relays to the registrar's JPY endpoint: set registrar.jpy_listen (or use mode stateful)")
		}
	}
	if jp.DiscoveryListen != "" {
		if err := checkHostPort(jp.DiscoveryListen); err != nil {
			return fieldErr("joinproxy.discovery_listen", "%v", err)
		}
		if jp.Listen == "" {
			return fieldErr("joinproxy.discovery_listen", "announces the join port: set joinproxy.listen")
		}
	}
	if jp.StateTimeout <= 0 {
		return fieldErr("joinproxy.state_timeout", "must be positive")
	}
	if jp.PerPledge < 1 {
		return fieldErr("joinproxy.per_pledge", "%d must be positive", jp.PerPledge)
	}
	if jp.PerInterface < jp.PerPledge {
		return fieldErr("joinproxy.per_interface", "%d is below joinproxy.per_pledge (%d)", jp.PerInterface, jp.PerPledge)
	}
	if jp.KeyRotation < time.Second {
		return fieldErr("joinproxy.key_rotation", "%v is shorter than a second", jp.KeyRotation)
	}

	th := c.Thread
	if th.BorderAgent != "" {
		if err := checkHostPort(th.BorderAgent); err != nil {
			return fieldErr("thread.border_agent", "%v", err)
		}
		if _, p, _ := net.SplitHostPort(th.BorderAgent); p == "0" {
			return fieldErr("thread.border_agent", "%q: port 0 (use the port of the _meshcop._udp SRV record)", th.BorderAgent)
		}
	}
	if th.CommissionerID == "" || len(th.CommissionerID) > maxCommissionerID {
		return fieldErr("thread.commissioner_id", "%q must be 1..%d bytes", th.CommissionerID, maxCommissionerID)
	}
	if (th.Certificate == "") != (th.Key == "") {
		return fieldErr("thread.key", "thread.certificate and thread.key go together")
	}
	if len(th.Steering) == 0 {
		return fieldErr("thread.steering", "list at least one of %s, %s", SteeringMeshCoP, SteeringAE)
	}
	seen := map[string]bool{}
	for i, s := range th.Steering {
		if s != SteeringMeshCoP && s != SteeringAE {
			return fieldErr(fmt.Sprintf("thread.steering[%d]", i), "%q is not one of %s, %s", s, SteeringMeshCoP, SteeringAE)
		}
		if seen[s] {
			return fieldErr(fmt.Sprintf("thread.steering[%d]", i), "%q listed twice", s)
		}
		seen[s] = true
	}
	switch {
	case th.KeepAliveMin < time.Second:
		return fieldErr("thread.keep_alive_min", "%v is shorter than a second", th.KeepAliveMin)
	case th.KeepAliveMax > maxKeepAlive:
		return fieldErr("thread.keep_alive_max", "%v is longer than %v (the leader drops a commissioner silent for 50 s)", th.KeepAliveMax, maxKeepAlive)
	case th.KeepAliveMax < th.KeepAliveMin:
		return fieldErr("thread.keep_alive_max", "%v is below thread.keep_alive_min (%v)", th.KeepAliveMax, th.KeepAliveMin)
	case th.BackoffMin <= 0:
		return fieldErr("thread.backoff_min", "must be positive")
	case th.BackoffMax < th.BackoffMin:
		return fieldErr("thread.backoff_max", "%v is below thread.backoff_min (%v)", th.BackoffMax, th.BackoffMin)
	}
	if th.MaxJoiners < 1 {
		return fieldErr("thread.max_joiners", "%d must be positive", th.MaxJoiners)
	}

	if a := c.BLE.Adapter; a != "" {
		if strings.ContainsAny(a, "/ \t") {
			return fieldErr("ble.adapter", "%q is not an adapter name such as hci0", a)
		}
		if !bluezBuilt {
			return fieldErr("ble.adapter", "%q is set but this tumbler was built without BlueZ: rebuild with -tags bluez (Linux only), or leave ble.adapter empty", a)
		}
	}
	if c.BLE.MaxLinks < 1 || c.BLE.MaxLinks > 65535 {
		return fieldErr("ble.max_links", "%d is outside 1..65535", c.BLE.MaxLinks)
	}
	return nil
}

// Bounds the thread section checks (thread/commissioner enforces them too).
const (
	maxCommissionerID = 64
	maxKeepAlive      = 45 * time.Second
)

// checkHostPort accepts host:port with a numeric port (0 for an ephemeral
// one).
func checkHostPort(s string) error {
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", s, p)
	}
	return nil
}
