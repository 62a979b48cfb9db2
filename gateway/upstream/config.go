package upstream

import (
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SinkConfig is one entry of gateway.yaml's upstream list: a name and
// exactly one of MQTT or Webhook.
//
//	upstream:
//	  - name: broker
//	    mqtt: {url: "mqtts://mqtt.example.com:8883", username: gw1, password: "...", tls: {ca_file: ca.pem}}
//	  - name: crm
//	    webhook: {url: "https://crm.example.com/tumbler", secret: "...", format: json}
//
// Zero values mean "the default"; WithDefaults fills them in and the sink
// constructors apply it themselves.
type SinkConfig struct {
	// Name is the sink's cursor in the outbox, its metrics label and log
	// field: 1 to 64 of [A-Za-z0-9._-]. Renaming a sink starts it from
	// the beginning of the outbox.
	Name    string         `yaml:"name" json:"name,omitempty"`
	MQTT    *MQTTConfig    `yaml:"mqtt,omitempty" json:"mqtt,omitempty"`
	Webhook *WebhookConfig `yaml:"webhook,omitempty" json:"webhook,omitempty"`
}

// MQTTConfig is an MQTT 5 broker sink. Records are published with QoS 1 to
// <prefix>/<gateway-id>/<record-type>/<device-id-hex>.
type MQTTConfig struct {
	// URL is mqtt:// or tcp:// (plain), mqtts://, ssl:// or tls:// (TLS);
	// host and optional port (default 1883, or 8883 with TLS), no path.
	URL string `yaml:"url" json:"url,omitempty"`
	// Prefix is the first topic level(s) (default "tumbler").
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// ClientID is the MQTT client identifier (default
	// "tumbler-<gateway-id>-<sink name>"). It must be stable: the broker
	// keeps the session under it.
	ClientID string `yaml:"client_id" json:"client_id,omitempty"`
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
	// TLS applies to the TLS schemes only.
	TLS TLSConfig `yaml:"tls" json:"tls,omitempty"`
	// KeepAlive is the MQTT keep alive (default 30s, at most 65535s).
	KeepAlive time.Duration `yaml:"keep_alive" json:"keep_alive,omitempty"`
	// SessionExpiry is how long the broker keeps the session after a
	// disconnect, so in-flight QoS 1 publishes complete after a reconnect
	// (default 1h).
	SessionExpiry time.Duration `yaml:"session_expiry" json:"session_expiry,omitempty"`
	// ConnectTimeout bounds one connection attempt, and how long a delivery
	// waits for a connection (default 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout" json:"connect_timeout,omitempty"`
	// PublishTimeout bounds the wait for one PUBACK (default 30s).
	PublishTimeout time.Duration `yaml:"publish_timeout" json:"publish_timeout,omitempty"`
	// MaxInflight is how many publishes may await a PUBACK at once, across
	// devices (default 64; the broker's Receive Maximum also applies).
	MaxInflight int `yaml:"max_inflight" json:"max_inflight,omitempty"`
}

// WebhookConfig is an HTTPS webhook sink: one POST per record.
type WebhookConfig struct {
	// URL is https://; http:// only to a loopback host (lab use).
	URL string `yaml:"url" json:"url,omitempty"`
	// Format is "cose" (default: the body is the COSE_Sign1) or "json" (a
	// JSON envelope with the COSE in base64).
	Format string `yaml:"format" json:"format,omitempty"`
	// Secret keys the Tumbler-Signature HMAC (at least 16 bytes). Empty:
	// requests are not signed.
	Secret string `yaml:"secret" json:"secret,omitempty"`
	// Headers are extra request headers (e.g. Authorization). They may not
	// replace the headers the sink sets.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	TLS     TLSConfig         `yaml:"tls" json:"tls,omitempty"`
	// Timeout bounds one request, response included (default 10s).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// MaxInflight is how many requests may run at once, across devices
	// (default 4).
	MaxInflight int `yaml:"max_inflight" json:"max_inflight,omitempty"`
}

// TLSConfig are the TLS client settings of a sink. Paths are used as
// given; the gateway resolves them against its configuration directory.
type TLSConfig struct {
	// CAFile is a PEM bundle of trust anchors (empty: the system roots).
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// CA is the same given inline: what a delegation's sink uses, since a
	// delegate may not name files on the gateway. At most one of CA and
	// CAFile.
	CA string `yaml:"ca" json:"ca,omitempty"`
	// CertFile and KeyFile are a PEM client certificate chain and key, for
	// upstreams that authenticate the gateway by certificate.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// ServerName overrides the name the server certificate is checked
	// against (default: the URL host).
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
}

// Webhook body formats.
const (
	FormatCOSE = "cose"
	FormatJSON = "json"
)

// Sink defaults.
const (
	DefaultPrefix            = "tumbler"
	DefaultKeepAlive         = 30 * time.Second
	DefaultSessionExpiry     = time.Hour
	DefaultConnectTimeout    = 10 * time.Second
	DefaultPublishTimeout    = 30 * time.Second
	DefaultMQTTInflight      = 64
	DefaultWebhookTimeout    = 10 * time.Second
	DefaultWebhookInflight   = 4
	minSecretLen             = 16
	maxInflight              = 65535
	maxKeepAlive             = 65535 * time.Second
	maxSessionExpirySeconds  = math.MaxUint32 - 1 // MaxUint32 means "never expires"
	defaultMQTTPort          = "1883"
	defaultMQTTSPort         = "8883"
	mqttSchemes              = "mqtt, mqtts, tcp, ssl or tls"
	reservedWebhookHeaderMsg = "is set by the sink"
)

// WithDefaults returns c with every zero field set to its default.
func (c MQTTConfig) WithDefaults() MQTTConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMQTTInflight
	}
	return c
}

// WithDefaults returns c with every zero field set to its default.
func (c WebhookConfig) WithDefaults() WebhookConfig {
	if c.Format == "" {
		c.Format = FormatCOSE
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultWebhookTimeout
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultWebhookInflight
	}
	return c
}

// WithDefaults returns c with the defaults of its sink filled in.
func (c SinkConfig) WithDefaults() SinkConfig {
	if c.MQTT != nil {
		m := c.MQTT.WithDefaults()
		c.MQTT = &m
	}
	if c.Webhook != nil {
		w := c.Webhook.WithDefaults()
		c.Webhook = &w
	}
	return c
}

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// ValidateSinks validates gateway.yaml's upstream list; errors name the
// field as "upstream[i].<field>". Names must be distinct.
func ValidateSinks(list []SinkConfig) error {
	seen := make(map[string]int, len(list))
	for i, c := range list {
		prefix := fmt.Sprintf("upstream[%d]", i)
		if err := c.Validate(); err != nil {
			return under(prefix, err)
		}
		if j, dup := seen[c.Name]; dup {
			return fieldErr(prefix+".name", "%q is already the name of upstream[%d]", c.Name, j)
		}
		seen[c.Name] = i
	}
	return nil
}

// Validate checks the entry; errors name the field relative to it
// ("name", "mqtt.url", ...).
func (c SinkConfig) Validate() error {
	if err := validName(c.Name); err != nil {
		return fieldErr("name", "%q %s", c.Name, err)
	}
	switch {
	case c.MQTT != nil && c.Webhook != nil:
		return fieldErr("mqtt", "an upstream is mqtt or webhook, not both")
	case c.MQTT != nil:
		return under("mqtt", c.MQTT.Validate())
	case c.Webhook != nil:
		return under("webhook", c.Webhook.Validate())
	default:
		return fieldErr("mqtt", "an upstream needs mqtt or webhook")
	}
}

// validName checks a sink name.
func validName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("must be 1 to 64 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("may hold only letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// Validate checks the MQTT settings; zero values (defaults) are valid.
// Errors name the field ("url", "tls.ca_file", ...).
func (c MQTTConfig) Validate() error {
	u, err := mqttURL(c.URL)
	if err != nil {
		return fieldErr("url", "%s", err)
	}
	if c.Prefix != "" {
		if err := validTopicPrefix(c.Prefix); err != nil {
			return fieldErr("prefix", "%q %s", c.Prefix, err)
		}
	}
	if strings.ContainsAny(c.ClientID, "\x00") || len(c.ClientID) > 65535 {
		return fieldErr("client_id", "must be at most 65535 bytes without NUL")
	}
	if c.Password != "" && c.Username == "" {
		return fieldErr("username", "a password needs a username")
	}
	if err := c.TLS.validate(); err != nil {
		return under("tls", err)
	}
	if !isTLSScheme(u.Scheme) && c.TLS != (TLSConfig{}) {
		return fieldErr("tls", "TLS settings need an mqtts, ssl or tls url, not %q", u.Scheme)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
		max   time.Duration
	}{
		{"keep_alive", c.KeepAlive, maxKeepAlive},
		{"session_expiry", c.SessionExpiry, maxSessionExpirySeconds * time.Second},
		{"connect_timeout", c.ConnectTimeout, 0},
		{"publish_timeout", c.PublishTimeout, 0},
	} {
		if d.v < 0 || (d.v > 0 && d.v < time.Second) {
			return fieldErr(d.field, "%v must be at least 1s (or absent for the default)", d.v)
		}
		if d.max > 0 && d.v > d.max {
			return fieldErr(d.field, "%v exceeds %v", d.v, d.max)
		}
	}
	if c.MaxInflight < 0 || c.MaxInflight > maxInflight {
		return fieldErr("max_inflight", "%d outside [1, %d]", c.MaxInflight, maxInflight)
	}
	return nil
}

// mqttURL parses and checks a broker URL.
func mqttURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q does not parse", s)
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "ssl", "tls":
	default:
		return nil, fmt.Errorf("scheme %q is not %s", u.Scheme, mqttSchemes)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("credentials belong in username and password, not in the url")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q may not have a path, query or fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not 1 to 65535", p)
		}
	}
	return u, nil
}

func isTLSScheme(s string) bool { return s == "mqtts" || s == "ssl" || s == "tls" }

// validTopicPrefix checks the configured prefix: one or more non-empty
// levels without wildcards, not a $ system topic.
func validTopicPrefix(p string) error {
	if strings.HasPrefix(p, "$") {
		return fmt.Errorf("may not start with '$' (reserved for broker topics)")
	}
	for _, level := range strings.Split(p, "/") {
		if err := validTopicLevel(level); err != nil {
			return err
		}
	}
	return nil
}

// validTopicLevel checks one topic level built from data (gateway id,
// record type): non-empty, no '/', no wildcard, no NUL.
func validTopicLevel(s string) error {
	if s == "" {
		return fmt.Errorf("has an empty topic level")
	}
	if strings.ContainsAny(s, "/+#\x00") {
		return fmt.Errorf("may not contain '/', '+', '#' or NUL")
	}
	return nil
}

func (t TLSConfig) validate() error {
	if t.CA != "" {
		if t.CAFile != "" {
			return fieldErr("ca", "give ca or ca_file, not both")
		}
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(t.CA)) {
			return fieldErr("ca", "holds no PEM certificate")
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			return fieldErr("cert_file", "key_file needs cert_file")
		}
		return fieldErr("key_file", "cert_file needs key_file")
	}
	return nil
}

// Validate checks the webhook settings; zero values (defaults) are valid.
// Errors name the field ("url", "secret", ...).
func (c WebhookConfig) Validate() error {
	u, err := webhookURL(c.URL)
	if err != nil {
		return fieldErr("url", "%s", err)
	}
	switch c.Format {
	case "", FormatCOSE, FormatJSON:
	default:
		return fieldErr("format", "%q is not cose or json", c.Format)
	}
	if c.Secret != "" && len(c.Secret) < minSecretLen {
		return fieldErr("secret", "must be at least %d bytes", minSecretLen)
	}
	for k, v := range c.Headers {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Content-Type", "Content-Length", "Idempotency-Key", "Host", headerSignature,
			headerRecordType, headerDevice, headerSeq:
			return fieldErr("headers", "%q %s", k, reservedWebhookHeaderMsg)
		}
		if k == "" || strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(v, "\r\n") {
			return fieldErr("headers", "%q is not a valid header", k)
		}
	}
	if err := c.TLS.validate(); err != nil {
		return under("tls", err)
	}
	if u.Scheme != "https" && c.TLS != (TLSConfig{}) {
		return fieldErr("tls", "TLS settings need an https url")
	}
	if c.Timeout < 0 || (c.Timeout > 0 && c.Timeout < 100*time.Millisecond) {
		return fieldErr("timeout", "%v must be at least 100ms (or absent for the default)", c.Timeout)
	}
	if c.MaxInflight < 0 || c.MaxInflight > maxInflight {
		return fieldErr("max_inflight", "%d outside [1, %d]", c.MaxInflight, maxInflight)
	}
	return nil
}

// webhookURL parses and checks a webhook URL.
func webhookURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q does not parse", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("scheme \"http\" is only allowed to a loopback host; use https")
		}
	default:
		return nil, fmt.Errorf("scheme %q is not https", u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("credentials belong in headers, not in the url")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%q may not have a fragment", s)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseSinkURL maps a command-line upstream (`tumbler testbed --upstream
// mqtt://127.0.0.1:1883`, `--upstream https://host/path`) to a validated
// configuration with defaults. MQTT URLs may carry user:password, which
// move to Username and Password. The sink is named "mqtt" or "webhook".
func ParseSinkURL(s string) (SinkConfig, error) {
	u, err := url.Parse(s)
	if err != nil {
		return SinkConfig{}, fieldErr("upstream", "%q does not parse", s)
	}
	var c SinkConfig
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "ssl", "tls":
		m := MQTTConfig{}
		if u.User != nil {
			m.Username = u.User.Username()
			m.Password, _ = u.User.Password()
			u.User = nil
		}
		m.URL = u.String()
		c = SinkConfig{Name: "mqtt", MQTT: &m}
	case "https", "http":
		c = SinkConfig{Name: "webhook", Webhook: &WebhookConfig{URL: s}}
	default:
		return SinkConfig{}, fieldErr("upstream", "scheme %q is not %s, https or http", u.Scheme, mqttSchemes)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return SinkConfig{}, under("upstream", err)
	}
	return c, nil
}
