package upstream

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// ContentTypeCOSE is the media type of a record: a COSE_Sign1
// (application/cose with the cose-type parameter, registered by RFC 8152
// and kept by RFC 9052; CoAP Content-Format 18). It is the MQTT Content
// Type and the webhook Content-Type in the cose format.
const ContentTypeCOSE = `application/cose; cose-type="cose-sign1"`

// SinkOption configures an MQTT or webhook sink. Options validate their
// argument and make the constructor fail with ErrConfig.
type SinkOption func(*sinkOptions) error

type sinkOptions struct {
	log                  zerolog.Logger
	clock                Clock
	rand                 io.Reader
	reconnBase, reconnMx time.Duration
}

func newSinkOptions(opts []SinkOption) (sinkOptions, error) {
	o := sinkOptions{
		log:        zerolog.Nop(),
		clock:      systemClock{},
		rand:       rand.Reader,
		reconnBase: DefaultReconnectBase,
		reconnMx:   DefaultReconnectMax,
	}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return sinkOptions{}, err
		}
	}
	return o, nil
}

// WithSinkLogger sets the sink's logger (default: disabled). Connection
// state changes are logged at info, refused connections at warn, and
// per-record lines at debug (rate-limited).
func WithSinkLogger(l zerolog.Logger) SinkOption {
	return func(o *sinkOptions) error {
		o.log = l
		return nil
	}
}

// WithSinkClock sets the clock that stamps webhook signatures and parses
// Retry-After dates (default: the system clock).
func WithSinkClock(c Clock) SinkOption {
	return func(o *sinkOptions) error {
		if c == nil {
			return fmt.Errorf("%w: nil clock", ErrConfig)
		}
		o.clock = c
		return nil
	}
}

// WithSinkRand sets the randomness for the MQTT reconnect jitter (default
// crypto/rand).
func WithSinkRand(r io.Reader) SinkOption {
	return func(o *sinkOptions) error {
		if r == nil {
			return fmt.Errorf("%w: nil rand", ErrConfig)
		}
		o.rand = r
		return nil
	}
}

// WithReconnectBackoff sets the MQTT reconnect backoff: full jitter, the
// ceiling doubling from base up to max (default DefaultReconnectBase to
// DefaultReconnectMax). A refused CONNECT (bad credentials) is retried on
// this schedule.
func WithReconnectBackoff(base, max time.Duration) SinkOption {
	return func(o *sinkOptions) error {
		if base <= 0 || max < base {
			return fmt.Errorf("%w: backoff needs 0 < base <= max, got %v and %v", ErrConfig, base, max)
		}
		o.reconnBase, o.reconnMx = base, max
		return nil
	}
}

// NewSink builds the sink an upstream entry describes. gatewayID is the
// gateway's id (the second MQTT topic level). Field errors are prefixed as
// in SinkConfig.Validate.
func NewSink(c SinkConfig, gatewayID string, opts ...SinkOption) (Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.MQTT != nil {
		s, err := NewMQTT(c.Name, gatewayID, *c.MQTT, opts...)
		if err != nil {
			return nil, under("mqtt", err)
		}
		return s, nil
	}
	s, err := NewWebhook(c.Name, *c.Webhook, opts...)
	if err != nil {
		return nil, under("webhook", err)
	}
	return s, nil
}

// load builds the client TLS configuration; errors name the field
// ("tls.ca_file", ...). host is the default server name.
func (t TLSConfig) load(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fieldErr("tls.ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fieldErr("tls.ca_file", "%s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CA)) {
			return nil, fieldErr("tls.ca", "holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fieldErr("tls.cert_file", "%v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
