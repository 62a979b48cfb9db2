package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/joinproxy"
	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/checkin"
	"github.com/tumbler-iot/tumbler/gateway/est"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/ownership"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
)

// Gateway is a running Tumbler daemon.
type Gateway struct {
	cfg   Config
	log   zerolog.Logger
	store *store.Store
	own   bool // the gateway opened the store and closes it
	reg   *prometheus.Registry

	registrar *registrar.Registrar
	est       *est.Server
	journal   *journal.Journal
	checkin   *checkin.Service
	records   *x509.Certificate // the record signer's certificate
	secure    *coap.Server      // CoAPS: cBRSKI and EST-coaps
	plain     *coap.Server      // CoAP: discovery
	plainMux  *coap.Mux

	deliverer *upstream.Deliverer // nil without upstream sinks
	pruner    *pruner
	owner     *ownership.Manager
	api       *api.Server // nil without admin tokens

	now       func() time.Time
	thread    *threadCred    // nil without thread.border_agent
	bleSource ble.LinkSource // WithBLELinks

	mu        sync.Mutex
	joinPorts map[int]bool
	jpyLinks  map[string]bool

	ready     chan struct{} // closed when Run has bound its sockets
	readyOnce sync.Once
	addrs     map[string]net.Addr
}

type options struct {
	log       zerolog.Logger
	store     *store.Store
	masa      registrar.MASAClient
	reg       *prometheus.Registry
	now       func() time.Time
	recordNow func() time.Time
	ble       ble.LinkSource
}

// Option injects a dependency into New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option { return func(o *options) { o.log = l } }

// WithStore uses s instead of opening cfg.Store; the caller closes it.
func WithStore(s *store.Store) Option { return func(o *options) { o.store = s } }

// WithMASAClient replaces the HTTPS MASA client (tests, fault injection).
func WithMASAClient(m registrar.MASAClient) Option { return func(o *options) { o.masa = m } }

// WithRegistry registers metrics on reg instead of a new registry.
func WithRegistry(reg *prometheus.Registry) Option { return func(o *options) { o.reg = reg } }

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRecordClock sets the clock of records and check-in schedules only
// (default: the clock). The testbed runs it fast so that a week of
// check-ins passes in seconds while certificates and vouchers keep real
// time.
func WithRecordClock(now func() time.Time) Option { return func(o *options) { o.recordNow = now } }

// WithBLELinks makes RunServices serve BLE pledges from src (a ble/sim
// Network, or another backend) on a Central, as ble.adapter does with
// BlueZ; it takes the place of ble.adapter.
func WithBLELinks(src ble.LinkSource) Option { return func(o *options) { o.ble = src } }

// New loads the key material named in cfg, opens the store and builds the
// services. It does not listen: see Run, or ServeDTLS/ServeCoAP for links
// the caller owns.
func New(ctx context.Context, cfg Config, opts ...Option) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: zerolog.Nop(), now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if o.recordNow == nil {
		o.recordNow = o.now
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
		o.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	g := &Gateway{cfg: cfg, log: o.log, reg: o.reg, now: o.now, bleSource: o.ble,
		joinPorts: map[int]bool{}, jpyLinks: map[string]bool{}, ready: make(chan struct{})}

	caCert, err := loadCert(cfg.Path(cfg.Domain.CACert), "domain.ca_cert")
	if err != nil {
		return nil, err
	}
	caKey, err := loadKey(cfg.Path(cfg.Domain.CAKey), "domain.ca_key", caCert)
	if err != nil {
		return nil, err
	}
	regChain, err := pki.LoadCerts(cfg.Path(cfg.Domain.RegistrarCert))
	if err != nil {
		return nil, fieldErr("domain.registrar_cert", "%v", err)
	}
	regKey, err := loadKey(cfg.Path(cfg.Domain.RegistrarKey), "domain.registrar_key", regChain[0])
	if err != nil {
		return nil, err
	}
	if !regChain[len(regChain)-1].Equal(caCert) {
		regChain = append(regChain, caCert)
	}
	if cfg.Thread.BorderAgent != "" {
		if g.thread, err = loadThreadCred(cfg, regChain, regKey, caCert); err != nil {
			return nil, err
		}
	}
	var mfrs []*x509.Certificate
	for i, f := range cfg.Registrar.Manufacturers {
		certs, err := pki.LoadCerts(cfg.Path(f))
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("registrar.manufacturers[%d]", i), "%v", err)
		}
		mfrs = append(mfrs, certs...)
	}
	if o.masa == nil {
		var roots *x509.CertPool
		if cfg.MASA.CA != "" {
			certs, err := pki.LoadCerts(cfg.Path(cfg.MASA.CA))
			if err != nil {
				return nil, fieldErr("masa.ca", "%v", err)
			}
			roots = x509.NewCertPool()
			for _, c := range certs {
				roots.AddCert(c)
			}
		}
		o.masa = registrar.NewHTTPMASA(tlsCert(regChain, regKey), roots, cfg.MASA.Timeout)
	}

	recCert, err := loadCert(cfg.Path(cfg.Domain.RecordsCert), "domain.records_cert")
	if err != nil {
		return nil, err
	}
	recKey, err := loadKey(cfg.Path(cfg.Domain.RecordsKey), "domain.records_key", recCert)
	if err != nil {
		return nil, err
	}
	g.records = recCert

	if o.store == nil {
		s, err := store.Open(ctx, cfg.Path(cfg.Store), store.WithLogger(o.log), store.WithClock(o.now))
		if err != nil {
			return nil, fieldErr("store", "%v", err)
		}
		o.store, g.own = s, true
	}
	g.store = o.store
	if g.journal, err = journal.New(ctx, g.store, recKey, journal.WithClock(o.recordNow), journal.WithMetrics(o.reg)); err != nil {
		g.Close()
		return nil, err
	}

	g.registrar, err = registrar.New(registrar.Config{
		Chain: regChain, Key: regKey, Manufacturers: mfrs, Policy: registrar.Policy(cfg.Registrar.Policy),
		MASAURL: cfg.MASA.URL, MASA: o.masa, Store: g.store, MASATimeout: cfg.MASA.Timeout, Journal: g.journal,
	}, registrar.WithLogger(o.log), registrar.WithClock(o.now), registrar.WithMetrics(o.reg))
	if err != nil {
		g.Close()
		return nil, err
	}
	g.est, err = est.NewServer(est.CA{Cert: caCert, Key: caKey, Chain: []*x509.Certificate{caCert}},
		est.WithAuthorizer(g.registrar), est.WithRecorder(g.registrar), est.WithValidity(cfg.EST.Validity),
		est.WithLogger(o.log), est.WithClock(o.now), est.WithMetrics(o.reg))
	if err != nil {
		g.Close()
		return nil, err
	}

	g.checkin, err = checkin.New(cfg.Checkin, g.store, g.journal, g.registrar.IdentifyLDevID,
		checkin.WithClock(o.recordNow), checkin.WithLogger(o.log), checkin.WithMetrics(o.reg))
	if err != nil {
		g.Close()
		return nil, err
	}

	var sinks []upstream.Sink
	var names []string
	for _, sc := range cfg.Upstream {
		sink, err := upstream.NewSink(cfg.sinkConfig(sc), cfg.ID, upstream.WithSinkLogger(o.log))
		if err != nil {
			g.Close()
			return nil, fieldErr("upstream", "%s: %v", sc.Name, err)
		}
		sinks, names = append(sinks, sink), append(names, sc.Name)
	}
	if len(sinks) > 0 {
		g.deliverer, err = upstream.NewDeliverer(outboxSource{g.store}, sinks, upstream.WithLogger(o.log), upstream.WithRegisterer(o.reg))
		if err != nil {
			g.Close()
			return nil, err
		}
	}
	var omasa ownership.MASA = noOwnershipMASA{}
	if m, ok := o.masa.(ownership.MASA); ok {
		omasa = m
	}
	g.owner, err = ownership.New(ctx, ownership.Config{
		Store: g.store, Journal: g.journal, Checkin: g.checkin, Registrar: g.registrar, MASA: omasa,
		DomainCA: caCert, DomainCAKey: caKey, MASAURL: cfg.MASA.URL, GatewayID: cfg.ID,
		TransferPoll: cfg.Ownership.TransferPoll, TransferValidity: cfg.Ownership.TransferValidity,
		DelegationPoll: cfg.Ownership.DelegationPoll,
		Now:            o.now, Log: o.log,
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	g.pruner = newPruner(g.store, names, g.owner.DeliverySinks, cfg.Outbox, o.log.With().Str("component", "outbox").Logger(), o.reg)
	if len(cfg.Admin.Tokens) > 0 {
		ac := cfg.Admin.Config
		if ac.TLSCertFile != "" {
			ac.TLSCertFile, ac.TLSKeyFile = cfg.Path(ac.TLSCertFile), cfg.Path(ac.TLSKeyFile)
		}
		g.api, err = api.New(g.owner, ac, api.WithLogger(o.log), api.WithHealth(g.health),
			api.WithMetricsHandler(promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{})))
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}

	mux := coap.NewMux()
	g.registrar.Register(mux)
	g.est.Register(mux)
	g.checkin.RegisterProvisioning(mux)
	clientCAs := x509.NewCertPool()
	for _, c := range mfrs {
		clientCAs.AddCert(c)
	}
	clientCAs.AddCert(caCert)
	g.secure, err = coap.NewServer(mux, coap.WithLogger(o.log), coap.WithMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"port": "coaps"}, o.reg)),
		coap.WithMaxPeers(cfg.Registrar.MaxPeers), coap.WithClock(o.now),
		coap.WithDTLS(coap.DTLSConfig{Certificate: tlsCert(regChain, regKey), ClientCAs: clientCAs, MTU: cfg.Registrar.MTU,
			VerifyPeer: g.owner.VerifyPeer}))
	if err != nil {
		g.Close()
		return nil, err
	}
	g.plainMux = coap.NewMux()
	// Check-ins arrive here; each worker waits for its record's group
	// commit, so the worker count is also the largest commit batch.
	g.plain, err = coap.NewServer(g.checkin.Dispatch(g.plainMux), coap.WithLogger(o.log), coap.WithClock(o.now),
		coap.WithCriticalOptions(coap.OptionOSCORE), coap.WithUDPWorkers(checkinWorkers, 8*checkinWorkers),
		coap.WithMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"port": "coap"}, o.reg)))
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func tlsCert(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func loadCert(path, field string) (*x509.Certificate, error) {
	c, err := pki.LoadCerts(path)
	if err != nil {
		return nil, fieldErr(field, "%v", err)
	}
	return c[0], nil
}

func loadKey(path, field string, cert *x509.Certificate) (crypto.Signer, error) {
	k, err := pki.LoadKey(path)
	if err != nil {
		return nil, fieldErr(field, "%v", err)
	}
	if pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fieldErr(field, "key does not match its certificate")
	}
	return k, nil
}

// checkinWorkers bounds concurrent check-ins in flight on the plain port.
const checkinWorkers = 512

// RecordsCert is the certificate of the key that signs the gateway's
// records: what `tumbler record verify --key` needs.
func (g *Gateway) RecordsCert() *x509.Certificate { return g.records }

// CheckIn is the check-in service.
func (g *Gateway) CheckIn() *checkin.Service { return g.checkin }

// RunServices runs the gateway's background work — the overdue tracker,
// upstream delivery and outbox pruning — and the links that are sessions
// rather than sockets (the Thread commissioner and its relay, the BLE
// central) until ctx ends. Run calls it; callers that serve their own
// links with ServeDTLS and ServeCoAP call it themselves.
func (g *Gateway) RunServices(ctx context.Context) error {
	links, err := g.sessionLinks()
	if err != nil {
		return err
	}
	eg, ctx := errgroup.WithContext(ctx)
	for _, serve := range links {
		eg.Go(func() error { return serve(ctx) })
	}
	eg.Go(func() error { return g.checkin.RunOverdue(ctx) })
	eg.Go(func() error { return g.pruner.run(ctx) })
	eg.Go(func() error { return g.owner.Run(ctx) })
	if g.deliverer != nil {
		eg.Go(func() error { return g.deliverer.Run(ctx) })
	}
	return eg.Wait()
}

// Prune removes delivered records from the outbox and enforces its bounds
// now (RunServices does it periodically).
func (g *Gateway) Prune(ctx context.Context) error { return g.pruner.prune(ctx) }

// Store is the gateway's store.
func (g *Gateway) Store() *store.Store { return g.store }

// Registry holds the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// DomainCA is the domain trust anchor.
func (g *Gateway) DomainCA() *x509.Certificate { return g.registrar.DomainCA() }

// ServeDTLS serves cBRSKI and EST-coaps over DTLS on pc (a UDP socket, or
// a link adapter such as the testbed radio, the Thread relay or the BLE
// central) until ctx ends, and announces pc in discovery: its port as a
// join port, or, for a joinproxy.RegistrarConn, its JPY endpoint for
// stateless join proxies.
func (g *Gateway) ServeDTLS(ctx context.Context, pc net.PacketConn) error {
	if rc, ok := pc.(*joinproxy.RegistrarConn); ok {
		g.announceJPY(rc.LocalAddr())
	} else if port, ok := joinproxy.Port(pc.LocalAddr()); ok {
		g.announce(port)
	}
	return g.secure.ServeDTLS(ctx, pc)
}

// ServeCoAP serves plain CoAP (discovery) on pc until ctx ends.
func (g *Gateway) ServeCoAP(ctx context.Context, pc net.PacketConn) error {
	return g.plain.ServeUDP(ctx, pc)
}

// announce lists a join port in /.well-known/core?brski-jp=* (the
// registrar "SHOULD announce itself as if it were a Join Proxy", cBRSKI -31
// §"Extensions to Discovery").
func (g *Gateway) announce(port int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.joinPorts[port] {
		return
	}
	g.joinPorts[port] = true
	g.plainMux.AddLink("", [2]string{"brski-jp", strconv.Itoa(port)})
}

// Run listens on the configured addresses — CoAPS on registrar.listen,
// plain CoAP for discovery on the port below it (5683 for 5684), the JPY
// endpoint on registrar.jpy_listen, the join proxy on joinproxy.listen and
// its discovery on joinproxy.discovery_listen, the admin endpoint — runs
// the services and session links (RunServices) and serves until ctx ends.
// It binds every socket before serving any, so an address in use fails
// with its field named and nothing half-started.
func (g *Gateway) Run(ctx context.Context) error {
	b, err := g.bind()
	if err != nil {
		return err
	}
	links, err := g.socketLinks(b)
	if err != nil {
		b.close()
		return err
	}
	if port, ok := joinproxy.Port(b.pcs[fieldListen].LocalAddr()); ok {
		g.announce(port)
	}
	g.setListening(b.addrs)
	ev := g.log.Info()
	for _, f := range b.order {
		ev = ev.Stringer(f, b.addrs[f])
	}
	ev.Msg("gateway listening")

	eg, ctx := errgroup.WithContext(ctx)
	secure, plain := b.pcs[fieldListen], b.pcs[fieldDiscovery]
	eg.Go(func() error { defer secure.Close(); return g.ServeDTLS(ctx, secure) })
	eg.Go(func() error { defer plain.Close(); return g.ServeCoAP(ctx, plain) })
	for _, serve := range links {
		eg.Go(func() error { return serve(ctx) })
	}
	eg.Go(func() error { return g.RunServices(ctx) })
	if b.admin != nil {
		eg.Go(func() error { return g.ServeAdmin(ctx, b.admin) })
	}
	return eg.Wait()
}

// Listening waits until Run has bound its sockets and returns their
// addresses by configuration field: "registrar.listen",
// "registrar.jpy_listen", "joinproxy.listen", "joinproxy.discovery_listen",
// "admin.listen", and "discovery" for the plain CoAP port beside
// registrar.listen. Fields that are off are absent. It returns ctx's error
// if Run has not bound them by then (not called, or failed).
func (g *Gateway) Listening(ctx context.Context) (map[string]net.Addr, error) {
	select {
	case <-g.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.addrs), nil
}

func (g *Gateway) setListening(addrs map[string]net.Addr) {
	g.readyOnce.Do(func() {
		g.mu.Lock()
		g.addrs = addrs
		g.mu.Unlock()
		close(g.ready)
	})
}

// ServeAdmin serves the admin endpoint (AdminHandler) on ln until ctx
// ends; it owns ln.
func (g *Gateway) ServeAdmin(ctx context.Context, ln net.Listener) error {
	if g.api != nil {
		return g.api.Serve(ctx, ln)
	}
	g.log.Warn().Str("admin", ln.Addr().String()).Msg("admin endpoint without admin.tokens: only /healthz, /metrics and /crl; the device API is off")
	srv := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

// AdminHandler is the admin endpoint: with admin tokens the device API
// (gateway/api), else /metrics (Prometheus), /healthz and /crl alone.
func (g *Gateway) AdminHandler() http.Handler {
	if g.api != nil {
		return g.api.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := g.health(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /crl", func(w http.ResponseWriter, r *http.Request) {
		crl, err := g.owner.CRL(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crl)
	})
	return mux
}

// health checks that the store answers.
func (g *Gateway) health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := g.store.CountByState(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Ownership is the lifecycle service behind the admin API.
func (g *Gateway) Ownership() *ownership.Manager { return g.owner }

// noOwnershipMASA stands in when the injected MASA client has no
// ownership extension: lifecycle operations that need the MASA fail.
type noOwnershipMASA struct{}

func (noOwnershipMASA) RegisterTransfer(context.Context, string, []byte) error {
	return registrar.ErrMASAUnavailable
}
func (noOwnershipMASA) Claim(context.Context, string, []byte) (time.Time, error) {
	return time.Time{}, registrar.ErrMASAUnavailable
}
func (noOwnershipMASA) Object(context.Context, string, []byte) error {
	return registrar.ErrMASAUnavailable
}
func (noOwnershipMASA) Claims(context.Context, string, []byte) ([]transfer.ClaimNotice, error) {
	return nil, nil // no feed to read
}
func (noOwnershipMASA) AuditLog(context.Context, string, []byte) ([]registrar.AuditEvent, error) {
	return nil, registrar.ErrMASAUnavailable
}

// Close stops serving and closes what New opened.
func (g *Gateway) Close() error {
	var errs []error
	if g.secure != nil {
		errs = append(errs, g.secure.Close())
	}
	if g.plain != nil {
		errs = append(errs, g.plain.Close())
	}
	if g.own && g.store != nil {
		errs = append(errs, g.store.Close())
	}
	return errors.Join(errs...)
}
