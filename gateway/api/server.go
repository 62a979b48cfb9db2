package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// Timeouts of the HTTP server Serve runs. WriteTimeout is long because a
// transfer or a repossession waits for the MASA.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = 3 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// shutdownGrace is how long Serve lets requests in flight finish
	// once its context ends.
	shutdownGrace = 5 * time.Second
	// healthTimeout bounds the WithHealth check.
	healthTimeout = 2 * time.Second
)

// Server is the admin API in front of an ownership.Service.
type Server struct {
	svc     ownership.Service
	log     zerolog.Logger
	metrics http.Handler
	health  func(context.Context) error
	// admins are the SHA-256 digests of the admin tokens, so every
	// comparison takes the same time whatever the presented length.
	admins [][sha256.Size]byte
	// cert is the HTTPS certificate, nil for plain HTTP.
	cert *tls.Certificate
	mux  *http.ServeMux

	mu      sync.Mutex
	running map[*http.Server]struct{}
	closed  bool
}

// New builds the API. cfg must validate; svc must not be nil. The TLS
// certificate, if configured, is loaded here so a bad file fails at
// start-up.
func New(svc ownership.Service, cfg Config, opts ...Option) (*Server, error) {
	if svc == nil {
		return nil, fmt.Errorf("%w: nil ownership service", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: zerolog.Nop()}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	s := &Server{
		svc:     svc,
		log:     o.log,
		metrics: o.metrics,
		health:  o.health,
		running: make(map[*http.Server]struct{}),
	}
	for _, t := range cfg.Tokens {
		s.admins = append(s.admins, sha256.Sum256([]byte(t)))
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: admin.tls_cert: %v", ErrConfig, err)
		}
		s.cert = &cert
	}
	s.mux = s.routes(cfg.PublicMetrics)
	return s, nil
}

// routes builds the mux. Each /api route states who may call it.
func (s *Server) routes(publicMetrics bool) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /api/devices", s.anyCaller(s.listDevices))
	m.Handle("GET /api/devices/{id}", s.deviceReader(s.getDevice))
	m.Handle("POST /api/devices/expected", s.adminOnly(s.expect))
	m.Handle("POST /api/devices/{id}/transfer", s.adminOnly(s.transfer))
	m.Handle("POST /api/repossess", s.adminOnly(s.repossess))
	m.Handle("POST /api/devices/{id}/reset", s.adminOnly(s.reset))
	m.Handle("POST /api/devices/{id}/decommission", s.adminOnly(s.decommission))
	m.Handle("POST /api/devices/{id}/readmit", s.adminOnly(s.readmit))
	m.Handle("POST /api/devices/{id}/object", s.adminOnly(s.object))
	m.Handle("POST /api/devices/{id}/delegations", s.adminOnly(s.delegate))
	m.Handle("DELETE /api/devices/{id}/delegations/{delegation}", s.adminOnly(s.endDelegation))
	m.Handle("GET /api/parked", s.adminOnly(s.parked))
	m.Handle("GET /crl", s.public(s.crl))
	m.Handle("GET /healthz", s.public(s.healthz))
	if s.metrics != nil {
		if publicMetrics {
			m.Handle("GET /metrics", s.metrics)
		} else {
			m.Handle("GET /metrics", s.adminOnly(func(w http.ResponseWriter, r *http.Request) error {
				s.metrics.ServeHTTP(w, r)
				return nil
			}))
		}
	}
	return m
}

// Handler is the API as an http.Handler: the routes of the package
// documentation, request logging, JSON errors for unknown routes and
// methods, and recovery from handler panics.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP routes r, then logs it.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h, pattern := s.mux.Handler(r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error().Str("method", r.Method).Str("path", r.URL.Path).Interface("panic", v).Msg("api handler panicked")
			if sw.status == 0 {
				writeError(sw, http.StatusInternalServerError, "internal error")
			}
		}
		s.logRequest(r, pattern, sw, time.Since(start))
	}()
	if pattern == "" || !isClean(r.URL.Path) {
		s.noRoute(sw, r, h)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// noRoute answers a request no route matches (404), or matches with
// another method (405, with Allow), or needs a cleaned path (a redirect,
// with Location), in JSON.
func (s *Server) noRoute(w *statusWriter, r *http.Request, h http.Handler) {
	c := &captureWriter{header: make(http.Header)}
	h.ServeHTTP(c, r)
	status := c.status
	if status == 0 {
		status = http.StatusNotFound
	}
	for _, k := range []string{"Allow", "Location"} {
		if v := c.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	var msg string
	switch {
	case status == http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed; allowed: %s", r.Method, c.header.Get("Allow"))
	case status >= 300 && status < 400:
		msg = "not a canonical path; use " + c.header.Get("Location")
	case status == http.StatusNotFound:
		msg = "no such route"
	default:
		msg = http.StatusText(status)
	}
	writeError(w, status, msg)
}

// logRequest writes one line per request: info, or warn with the cause
// for a failure. Successful probes (/healthz, /metrics) log at debug.
func (s *Server) logRequest(r *http.Request, route string, w *statusWriter, d time.Duration) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	var ev *zerolog.Event
	switch {
	case status >= 400:
		ev = s.log.Warn()
		if w.cause != nil {
			ev = ev.AnErr("cause", w.cause)
		}
	case r.URL.Path == "/healthz" || r.URL.Path == "/metrics":
		ev = s.log.Debug()
	default:
		ev = s.log.Info()
	}
	ev = ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
		Dur("duration", d).Int64("bytes", w.bytes).Str("remote", r.RemoteAddr)
	if route != "" {
		ev = ev.Str("route", route)
	}
	if w.caller != "" {
		ev = ev.Str("caller", w.caller)
	}
	ev.Msg("api request")
}

// Serve serves the API on ln (HTTPS when Config has a certificate) until
// ctx ends or Close is called, then lets requests in flight finish for a
// few seconds and returns nil. Serve owns ln. It may run on several
// listeners at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(httpLogWriter{s.log}, "", 0),
	}
	if s.cert != nil {
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*s.cert}}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.running[hs] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, hs)
		s.mu.Unlock()
	}()

	scheme := "http"
	if s.cert != nil {
		scheme = "https"
	} else if !isLoopbackAddr(ln.Addr()) {
		s.log.Warn().Stringer("addr", ln.Addr()).Msg("admin API serves plain HTTP on a non-loopback address: bearer tokens cross the network in clear; set admin.tls_cert and admin.tls_key")
	}
	s.log.Info().Stringer("addr", ln.Addr()).Str("scheme", scheme).Msg("admin API listening")

	errc := make(chan error, 1)
	go func() {
		if s.cert != nil {
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn().Err(err).Msg("admin API: requests still running at shutdown were cut off")
		_ = hs.Close()
	}
	<-errc
	return nil
}

// Close stops every Serve at once, cutting requests in flight, and makes
// later Serve calls return at once. It does not wait for Serve to return.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for hs := range s.running {
		errs = append(errs, hs.Close())
	}
	return errors.Join(errs...)
}

// isClean reports whether p is a canonical path, one the mux serves
// without redirecting (no "//", "." or ".." elements).
func isClean(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

func isLoopbackAddr(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	return false
}

// statusWriter records what a handler wrote, who called and why it
// failed, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	cause  error  // the error behind a failure, logged not sent
	caller string // "admin[i]", "delegation" or "" (public)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter keeps the status and headers of the mux's own 404/405
// answer and drops its text body.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

// httpLogWriter sends net/http's own messages (TLS handshake errors,
// malformed requests) to the logger at debug.
type httpLogWriter struct{ log zerolog.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Debug().Str("http", msg).Msg("admin API server")
	return len(p), nil
}
