package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rs/zerolog"
)

// MinTokenLen is the shortest admin token Config accepts.
const MinTokenLen = 16

// Config is the admin API's part of gateway.yaml's admin section.
//
//	admin:
//	  listen: 127.0.0.1:8484
//	  tokens: ["<at least 16 characters>"]  # e.g. openssl rand -base64 32
//	  tls_cert: api.pem                      # optional: serve HTTPS
//	  tls_key: api.key
//	  public_metrics: false                  # true: /metrics without a token
type Config struct {
	// Tokens are the admin bearer tokens: any of them grants every route.
	// At least one, each at least MinTokenLen characters of the RFC 6750
	// token alphabet (A-Z a-z 0-9 - . _ ~ + / and trailing =).
	Tokens []string `yaml:"tokens"`
	// TLSCertFile and TLSKeyFile are a PEM certificate chain and key; with
	// both set Serve speaks HTTPS (TLS 1.2 or later). Paths are used as
	// given; the gateway resolves them against its configuration
	// directory.
	TLSCertFile string `yaml:"tls_cert"`
	TLSKeyFile  string `yaml:"tls_key"`
	// PublicMetrics serves /metrics without a token, for Prometheus
	// scrapers that cannot send one. Default false: /metrics needs an
	// admin token (Prometheus: authorization: {credentials_file: ...}).
	PublicMetrics bool `yaml:"public_metrics"`
}

// Validate names the first bad field (prefixed "admin.").
func (c Config) Validate() error {
	if len(c.Tokens) == 0 {
		return fmt.Errorf("%w: admin.tokens: at least one admin token is required", ErrConfig)
	}
	seen := make(map[string]int, len(c.Tokens))
	for i, t := range c.Tokens {
		if len(t) < MinTokenLen {
			return fmt.Errorf("%w: admin.tokens[%d]: must be at least %d characters", ErrConfig, i, MinTokenLen)
		}
		if !validToken(t) {
			return fmt.Errorf("%w: admin.tokens[%d]: may hold only letters, digits, '-', '.', '_', '~', '+', '/' and trailing '='", ErrConfig, i)
		}
		if j, dup := seen[t]; dup {
			return fmt.Errorf("%w: admin.tokens[%d]: the same as admin.tokens[%d]", ErrConfig, i, j)
		}
		seen[t] = i
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		if c.TLSCertFile == "" {
			return fmt.Errorf("%w: admin.tls_cert: tls_key needs tls_cert", ErrConfig)
		}
		return fmt.Errorf("%w: admin.tls_key: tls_cert needs tls_key", ErrConfig)
	}
	return nil
}

// maxTokenLen bounds a presented bearer token; longer ones are refused
// without asking the service.
const maxTokenLen = 1024

// validToken reports whether t is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func validToken(t string) bool {
	if t == "" || len(t) > maxTokenLen {
		return false
	}
	i := 0
	for ; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(t); i++ {
		if t[i] != '=' {
			return false
		}
	}
	return true
}

// Option configures a Server.
type Option func(*options) error

type options struct {
	log     zerolog.Logger
	metrics http.Handler
	health  func(context.Context) error
}

// WithLogger sets the logger (default: none). Every request is logged at
// info (probes of /healthz and /metrics at debug), failures at warn with
// their cause.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l.With().Str("component", "api").Logger()
		return nil
	}
}

// WithMetricsHandler serves h (the gateway's Prometheus handler) at
// /metrics. Without it /metrics is 404.
func WithMetricsHandler(h http.Handler) Option {
	return func(o *options) error {
		if h == nil {
			return fmt.Errorf("%w: nil metrics handler", ErrConfig)
		}
		o.metrics = h
		return nil
	}
}

// WithHealth makes /healthz call check (bounded by a 2 s deadline): nil is
// healthy (200), an error is 503. Without it /healthz is always 200.
func WithHealth(check func(ctx context.Context) error) Option {
	return func(o *options) error {
		if check == nil {
			return fmt.Errorf("%w: nil health check", ErrConfig)
		}
		o.health = check
		return nil
	}
}
