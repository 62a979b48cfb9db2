package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/joinproxy"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/thread/commissioner"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	"github.com/tumbler-iot/tumbler/thread/relay"
)

// Links: every way a pledge's DTLS datagrams reach the one registrar DTLS
// server (g.secure). Sockets — registrar.listen, the JPY endpoint, the
// join proxy — are bound by Run; sessions — the Thread commissioner's
// relay and the BLE central — are run by RunServices. Each ends up in
// ServeDTLS as a net.PacketConn. docs/links.md is the operator's view,
// docs/decisions/0011-link-wiring.md the reasons.

// Keys of Listening's map: the configuration field of each socket.
const (
	fieldListen             = "registrar.listen"
	fieldDiscovery          = "discovery"
	fieldJPY                = "registrar.jpy_listen"
	fieldJoinProxy          = "joinproxy.listen"
	fieldJoinProxyDiscovery = "joinproxy.discovery_listen"
	fieldAdmin              = "admin.listen"
)

// bound are the sockets Run opened, before anything serves them.
type bound struct {
	order []string // fields in the order bound, for the log
	pcs   map[string]net.PacketConn
	addrs map[string]net.Addr
	admin net.Listener
	extra []net.PacketConn // not configured directly (the stateless join proxy's upstream)
}

func (b *bound) close() {
	for _, pc := range b.pcs {
		_ = pc.Close()
	}
	for _, pc := range b.extra {
		_ = pc.Close()
	}
	if b.admin != nil {
		_ = b.admin.Close()
	}
}

func (b *bound) add(field string, pc net.PacketConn) {
	b.pcs[field], b.addrs[field] = pc, pc.LocalAddr()
	b.order = append(b.order, field)
}

// bind opens every configured socket, or none: the first failure closes
// what was opened and names its field.
func (g *Gateway) bind() (_ *bound, err error) {
	b := &bound{pcs: map[string]net.PacketConn{}, addrs: map[string]net.Addr{}}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	udp := func(field, addr string) error {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fieldErr(field, "%v", err)
		}
		b.add(field, pc)
		return nil
	}
	if err := udp(fieldListen, g.cfg.Registrar.Listen); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(g.cfg.Registrar.Listen)
	n, _ := strconv.Atoi(port)
	plainAddr := net.JoinHostPort(host, strconv.Itoa(max(n-1, 0)))
	if n == 0 {
		plainAddr = net.JoinHostPort(host, "0")
	}
	plain, err := net.ListenPacket("udp", plainAddr)
	if err != nil {
		return nil, fmt.Errorf("discovery port %s: %w", plainAddr, err)
	}
	b.add(fieldDiscovery, plain)
	for _, f := range []struct{ field, addr string }{
		{fieldJPY, g.cfg.Registrar.JPYListen},
		{fieldJoinProxy, g.cfg.JoinProxy.Listen},
		{fieldJoinProxyDiscovery, g.cfg.JoinProxy.DiscoveryListen},
	} {
		if f.addr == "" {
			continue
		}
		if err := udp(f.field, f.addr); err != nil {
			return nil, err
		}
	}
	if g.cfg.Admin.Listen != "" {
		if b.admin, err = net.Listen("tcp", g.cfg.Admin.Listen); err != nil {
			return nil, fieldErr(fieldAdmin, "%v", err)
		}
		b.addrs[fieldAdmin] = b.admin.Addr()
		b.order = append(b.order, fieldAdmin)
	}
	return b, nil
}

// socketLinks builds the registrar's JPY endpoint and the join proxy on
// the sockets bind opened, and returns what serves them.
func (g *Gateway) socketLinks(b *bound) ([]func(context.Context) error, error) {
	var serve []func(context.Context) error
	if pc := b.pcs[fieldJPY]; pc != nil {
		peers := g.cfg.Registrar.MaxPeers
		rc, err := joinproxy.NewRegistrarConn(pc, joinproxy.WithLogger(g.log), joinproxy.WithMetrics(g.reg),
			joinproxy.WithClock(g.now), joinproxy.WithMaxPeers(peers, min(joinproxy.DefaultMaxPeersPerJP, peers)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fieldJPY, err)
		}
		// Announced before Run reports its sockets, not when the serving
		// goroutine gets to it: discovery is complete once Listening returns.
		g.announceJPY(rc.LocalAddr())
		serve = append(serve, func(ctx context.Context) error {
			defer rc.Close()
			return g.ServeDTLS(ctx, rc)
		})
	}
	link := b.pcs[fieldJoinProxy]
	if link == nil {
		return serve, nil
	}
	jp := g.cfg.JoinProxy
	opts := []joinproxy.Option{joinproxy.WithLogger(g.log), joinproxy.WithMetrics(g.reg), joinproxy.WithClock(g.now)}
	switch jp.Mode {
	case JoinProxyStateful:
		// The degenerate deployment the draft allows: the registrar is on
		// this host, so circuits run over loopback to registrar.listen.
		target := local(b.addrs[fieldListen])
		p, err := joinproxy.NewStateful(target, func() (net.PacketConn, error) {
			return net.ListenUDP("udp", &net.UDPAddr{IP: target.IP, Zone: target.Zone})
		}, append(opts, joinproxy.WithStateTimeout(jp.StateTimeout), joinproxy.WithLimits(jp.PerPledge, jp.PerInterface))...)
		if err != nil {
			return nil, fmt.Errorf("joinproxy: %w", err)
		}
		serve = append(serve, func(ctx context.Context) error { return p.Serve(ctx, link) })
	case JoinProxyStateless:
		target := local(b.addrs[fieldJPY])
		p, err := joinproxy.NewStateless(target, append(opts, joinproxy.WithKeyRotation(jp.KeyRotation))...)
		if err != nil {
			return nil, fmt.Errorf("joinproxy: %w", err)
		}
		up, err := net.ListenUDP("udp", &net.UDPAddr{IP: target.IP, Zone: target.Zone})
		if err != nil {
			return nil, fmt.Errorf("joinproxy: registrar-facing socket: %w", err)
		}
		b.extra = append(b.extra, up)
		serve = append(serve, func(ctx context.Context) error { return p.Serve(ctx, up, link) })
	}
	if dpc := b.pcs[fieldJoinProxyDiscovery]; dpc != nil {
		port, ok := joinproxy.Port(link.LocalAddr())
		if !ok {
			return nil, fieldErr(fieldJoinProxy, "no port in %v", link.LocalAddr())
		}
		srv, err := joinproxy.NewDiscovery(port, coap.WithLogger(g.log), coap.WithClock(g.now),
			coap.WithMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"port": "joinproxy-discovery"}, g.reg)))
		if err != nil {
			return nil, fmt.Errorf("joinproxy discovery: %w", err)
		}
		serve = append(serve, func(ctx context.Context) error {
			defer srv.Close()
			defer dpc.Close()
			return srv.ServeUDP(ctx, dpc)
		})
	}
	return serve, nil
}

// local is a UDP address this host can send to for a socket bound to a:
// a wildcard address becomes the loopback address of its family.
func local(a net.Addr) *net.UDPAddr {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		if r, err := net.ResolveUDPAddr("udp", a.String()); err == nil {
			u = r
		} else {
			u = &net.UDPAddr{}
		}
	}
	out := &net.UDPAddr{IP: u.IP, Port: u.Port, Zone: u.Zone}
	switch {
	case u.IP == nil || u.IP.IsUnspecified() && u.IP.To4() == nil:
		out.IP = net.IPv6loopback
	case u.IP.IsUnspecified():
		out.IP = net.IPv4(127, 0, 0, 1)
	}
	return out
}

// announceJPY lists the registrar's JPY endpoint for stateless join
// proxies:
//
//	REQ: GET coap://[ff05::fd]/.well-known/core?rt=brski.rjp
//	RES: 2.05 Content, Content-Format: 40
//	     <jpy://[2001:db8:0:abcd::52]:7634>;rt=brski.rjp
//
// The link must carry the address ("the authority component cannot include
// only a port number"), so a wildcard socket is not announced: join
// proxies are then configured with it. The scheme is the editor's copy's
// "jpy" (coaps+jpy in earlier revisions). draft-ietf-anima-constrained-
// join-proxy §"Join Proxy Discovers Registrar"; ../shared/spec/cbrski.md
// §6.2.
func (g *Gateway) announceJPY(a net.Addr) {
	u, ok := a.(*net.UDPAddr)
	if !ok || u.IP == nil || u.IP.IsUnspecified() || u.Port == 0 {
		g.log.Info().Stringer("jpy", a).Msg("JPY endpoint not announced in discovery (no specific address): configure join proxies with it")
		return
	}
	host := u.IP.String()
	if u.Zone != "" {
		host += "%25" + u.Zone // RFC 6874
	}
	uri := "jpy://" + net.JoinHostPort(host, strconv.Itoa(u.Port))
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.jpyLinks[uri] {
		return
	}
	g.jpyLinks[uri] = true
	g.plainMux.AddLink(uri, [2]string{"rt", "brski.rjp"})
}

// sessionLinks builds the links that are sessions, not sockets: the
// Thread commissioner with its relay, and the BLE central.
func (g *Gateway) sessionLinks() ([]func(context.Context) error, error) {
	var serve []func(context.Context) error
	if g.thread != nil {
		f, err := g.threadLink()
		if err != nil {
			return nil, err
		}
		serve = append(serve, f)
	}
	if g.bleSource != nil || g.cfg.BLE.Adapter != "" {
		f, err := g.bleLink()
		if err != nil {
			return nil, err
		}
		serve = append(serve, f)
	}
	return serve, nil
}

// threadCred is the commissioner's DTLS credential and trust anchors.
type threadCred struct {
	cert  tls.Certificate
	roots *x509.CertPool
}

// loadThreadCred picks the commissioner's credential: thread.certificate
// and thread.key if set, else the registrar's certificate (signed by the
// domain CA directly, with clientAuth, as a CCM Border Agent expects a
// commissioner's to be), and the Border Agent's trust anchors: thread.ca
// if set, else the domain CA.
func loadThreadCred(cfg Config, regChain []*x509.Certificate, regKey crypto.Signer, ca *x509.Certificate) (*threadCred, error) {
	tc := &threadCred{cert: tlsCert(regChain, regKey), roots: x509.NewCertPool()}
	if cfg.Thread.Certificate != "" {
		chain, err := pki.LoadCerts(cfg.Path(cfg.Thread.Certificate))
		if err != nil {
			return nil, fieldErr("thread.certificate", "%v", err)
		}
		key, err := loadKey(cfg.Path(cfg.Thread.Key), "thread.key", chain[0])
		if err != nil {
			return nil, err
		}
		tc.cert = tlsCert(chain, key)
	}
	if cfg.Thread.CA == "" {
		tc.roots.AddCert(ca)
		return tc, nil
	}
	certs, err := pki.LoadCerts(cfg.Path(cfg.Thread.CA))
	if err != nil {
		return nil, fieldErr("thread.ca", "%v", err)
	}
	for _, c := range certs {
		tc.roots.AddCert(c)
	}
	return tc, nil
}

// threadLink makes the commissioner and the relay it carries: the
// commissioner petitions, keeps the role and resigns when ctx ends; the
// relay is a PacketConn of Thread joiners for the registrar.
func (g *Gateway) threadLink() (func(context.Context) error, error) {
	tc := g.cfg.Thread
	ba, err := net.ResolveUDPAddr("udp", tc.BorderAgent)
	if err != nil {
		return nil, fieldErr("thread.border_agent", "%v", err)
	}
	var types []meshcop.Type
	for _, s := range tc.Steering {
		switch s {
		case SteeringMeshCoP:
			types = append(types, meshcop.TypeSteeringData)
		case SteeringAE:
			types = append(types, meshcop.TypeAESteeringData)
		}
	}
	// Permit-all steering whatever the policy: expected devices are known
	// by serial and IDevID, not by the EUI-64 a Joiner ID is hashed from,
	// so the registrar's policy decides (docs/decisions/0011-link-wiring.md).
	comm, err := commissioner.New(commissioner.Config{
		BorderAgent: ba, ID: tc.CommissionerID, Certificate: g.thread.cert, RootCAs: g.thread.roots, AllowAll: true,
	}, commissioner.WithLogger(g.log), commissioner.WithKeepAlive(tc.KeepAliveMin, tc.KeepAliveMax),
		commissioner.WithBackoff(tc.BackoffMin, tc.BackoffMax), commissioner.WithSteeringTypes(types...))
	if err != nil {
		return nil, fmt.Errorf("%w: thread: %w", ErrConfig, err)
	}
	rl, err := relay.New(comm, relay.WithLogger(g.log), relay.WithMaxJoiners(tc.MaxJoiners), relay.WithClock(g.now))
	if err != nil {
		return nil, fmt.Errorf("%w: thread.max_joiners: %w", ErrConfig, err)
	}
	comm.Handle(meshcop.PathRelayRx, rl)
	if err := g.reg.Register(newRelayCollector(rl, comm)); err != nil {
		return nil, fmt.Errorf("thread metrics: %w", err)
	}
	if g.cfg.Registrar.Policy == string(registrar.Expected) {
		g.log.Info().Msg("Thread steering data admits every joiner: the registrar's expected policy decides who enrolls")
	}
	return func(ctx context.Context) error {
		eg, ctx := errgroup.WithContext(ctx)
		eg.Go(func() error { return comm.Run(ctx) })
		eg.Go(func() error {
			defer func() { _ = rl.Close() }()
			return g.ServeDTLS(ctx, rl)
		})
		return eg.Wait()
	}, nil
}

// bleLink makes the BLE central over the configured adapter (or the
// source of WithBLELinks). A scan that stops (the adapter powered off,
// bluetoothd restarted) is restarted with backoff rather than ending the
// daemon; sessions already open live on.
func (g *Gateway) bleLink() (func(context.Context) error, error) {
	src := g.bleSource
	if src == nil {
		s, err := openAdapter(g.cfg.BLE.Adapter, g.log)
		if err != nil {
			return nil, fieldErr("ble.adapter", "%v", err)
		}
		src = s
	}
	central, err := ble.NewCentral(ble.WithLogger(g.log), ble.WithMaxLinks(g.cfg.BLE.MaxLinks))
	if err != nil {
		return nil, fmt.Errorf("%w: ble.max_links: %w", ErrConfig, err)
	}
	if err := g.reg.Register(newCentralCollector(central)); err != nil {
		_ = central.Close()
		return nil, fmt.Errorf("ble metrics: %w", err)
	}
	return func(ctx context.Context) error {
		eg, ctx := errgroup.WithContext(ctx)
		eg.Go(func() error {
			defer func() { _ = central.Close() }()
			return g.ServeDTLS(ctx, central)
		})
		eg.Go(func() error { return g.scanBLE(ctx, central, src) })
		return eg.Wait()
	}, nil
}

// scanBLE feeds central with src's links until ctx ends.
func (g *Gateway) scanBLE(ctx context.Context, central *ble.Central, src ble.LinkSource) error {
	wait := bleRetryMin
	for {
		err := central.Serve(ctx, src)
		if err == nil || ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return nil
		}
		g.log.Warn().Err(err).Dur("retry_in", wait).Msg("BLE scanning stopped")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, bleRetryMax)
	}
}

// Bounds of the wait before BLE scanning restarts.
const (
	bleRetryMin = time.Second
	bleRetryMax = time.Minute
)
