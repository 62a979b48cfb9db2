package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/ble"
	blesim "github.com/tumbler-iot/tumbler/ble/sim"
	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/joinproxy"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/mote"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/commissioner"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	"github.com/tumbler-iot/tumbler/thread/relay"
	"github.com/tumbler-iot/tumbler/thread/sim"
)

// Link kinds: how a mote reaches the registrar.
const (
	// LinkUDP: loopback UDP straight to the registrar.
	LinkUDP = "udp"
	// LinkThread: a Thread mesh (the radio, with hops and 6LoWPAN
	// fragments) to a Joiner Router, whose RLY_RX/RLY_TX reach the
	// gateway's commissioner through a Border Agent; the registrar serves
	// the relay.
	LinkThread = "thread"
	// LinkBLE: BTP over simulated GATT to the gateway's BLE central.
	LinkBLE = "ble"
	// LinkJP: an IP link to a stateful join proxy, which opens a UDP
	// circuit per pledge to the registrar's CoAPS port.
	LinkJP = "ip-jp"
	// LinkJPY: an IP link to a stateless join proxy, which wraps each
	// datagram in a JPY message to the registrar's JPY port.
	LinkJPY = "ip-jpy"
)

// LinkReport is one link kind's part of the report.
type LinkReport struct {
	Motes        int     `json:"motes"`
	Onboarded    int     `json:"onboarded"`
	Failed       int     `json:"failed"`
	OnboardP50Ms float64 `json:"onboard_p50_ms"`
	OnboardP99Ms float64 `json:"onboard_p99_ms"`
	OnboardMaxMs float64 `json:"onboard_max_ms"`
	// Reconnects are DTLS sessions the motes opened again after one broke.
	Reconnects int `json:"reconnects"`
	// Datagrams the motes sent, and of those, DTLS handshake records they
	// sent again (a flight retransmitted after a loss).
	PledgeDatagrams          uint64 `json:"pledge_datagrams"`
	HandshakeRetransmissions uint64 `json:"handshake_retransmissions"`
	// LinkDatagrams and LinkDropped count what the link carried and lost
	// in both directions (Thread: datagrams lost to any fragment on any
	// hop; BLE: links the radio broke and datagrams dropped at full
	// queues). The two join proxies share one IP link and report it whole.
	LinkDatagrams uint64 `json:"link_datagrams"`
	LinkDropped   uint64 `json:"link_dropped"`
}

// LinkOptions shape the simulated links.
type LinkOptions struct {
	// Loss is the per-datagram loss of the IP link and the per-frame,
	// per-hop, per-transmission loss of the Thread mesh.
	Loss float64
	// MACAttempts is how often the Thread MAC sends a frame before it
	// gives up (default 4: IEEE 802.15.4 macMaxFrameRetries 3), so a frame
	// is lost on a hop with probability Loss^MACAttempts. 1 shows raw
	// fragment loss.
	MACAttempts int
	// Hops from a Thread mote to the Joiner Router's border router.
	Hops int
	// BLEDrop is the probability that a GATT operation ends the BLE link.
	BLEDrop float64
	// Seed makes the links' loss and delays replayable.
	Seed uint64
	// Transmission is the CoAP retransmission of motes on these links
	// (default DefaultLinkTransmission).
	Transmission coap.Transmission
}

// DefaultLinkTransmission is the CoAP retransmission of motes on the
// simulated links: RFC 7252's exponential back-off from a shorter
// ACK_TIMEOUT (the links' latency is milliseconds) and more attempts, so
// that at 20% datagram loss an exchange runs out of retransmissions about
// once in ten thousand (0.36^9) rather than once in two hundred (0.36^5).
var DefaultLinkTransmission = coap.Transmission{AckTimeout: 500 * time.Millisecond, RandomFactor: 1.5, MaxRetransmit: 8}

// links holds the simulated networks and the gateway-side adapters.
type links struct {
	o      LinkOptions
	log    zerolog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error

	thread, backbone *radio.Network
	ba               *sim.BorderAgent
	comm             *commissioner.Commissioner
	relay            *relay.Conn
	air              *blesim.Network
	central          *ble.Central
	ip               *radio.Network
	next             atomic.Uint64 // unique link addresses
	counters         map[string]*linkCounters
}

type linkCounters struct {
	datagrams, retransmissions atomic.Uint64
}

// startLinks brings up the links kinds needs, each ending at the lab's
// gateway.
func startLinks(ctx context.Context, lab *Lab, kinds map[string]bool, o LinkOptions, log zerolog.Logger) (*links, error) {
	ctx, cancel := context.WithCancel(ctx)
	l := &links{o: o, log: log, cancel: cancel, counters: map[string]*linkCounters{}}
	for _, k := range []string{LinkUDP, LinkThread, LinkBLE, LinkJP, LinkJPY} {
		l.counters[k] = &linkCounters{}
	}
	ok := false
	defer func() {
		if !ok {
			l.close()
		}
	}()
	if kinds[LinkThread] {
		if err := l.startThread(ctx, lab); err != nil {
			return nil, fmt.Errorf("testbed: thread: %w", err)
		}
	}
	if kinds[LinkBLE] {
		if err := l.startBLE(ctx, lab); err != nil {
			return nil, fmt.Errorf("testbed: ble: %w", err)
		}
	}
	if kinds[LinkJP] || kinds[LinkJPY] {
		if err := l.startIP(ctx, lab); err != nil {
			return nil, fmt.Errorf("testbed: join proxy: %w", err)
		}
	}
	ok = true
	return l, nil
}

func (l *links) goRun(f func() error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
		}
	}()
}

// close stops every link and waits for its goroutines.
func (l *links) close() error {
	l.cancel()
	for _, n := range []*radio.Network{l.thread, l.backbone, l.ip} {
		if n != nil {
			n.Close()
		}
	}
	if l.air != nil {
		l.air.Close()
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}

// DefaultMACAttempts is IEEE 802.15.4's one transmission plus
// macMaxFrameRetries (3).
const DefaultMACAttempts = 4

// The border-agent address on the backbone and the Thread frame payload
// (an 802.15.4 frame of 127 octets less MAC and 6LoWPAN headers).
const (
	borderAgentAddr = "border-agent:49191"
	threadFrame     = 96
)

// startThread: a Border Agent with its Joiner Router on the mesh, the
// gateway's commissioner on the backbone, the relay served by the
// registrar.
func (l *links) startThread(ctx context.Context, lab *Lab) error {
	var err error
	l.backbone, err = radio.NewNetwork(radio.WithSeed(l.o.Seed + 101))
	if err != nil {
		return err
	}
	hops := max(l.o.Hops, 1)
	attempts := l.o.MACAttempts
	if attempts <= 0 {
		attempts = DefaultMACAttempts
	}
	l.thread, err = radio.NewNetwork(radio.WithSeed(l.o.Seed), radio.WithLoss(math.Pow(l.o.Loss, float64(attempts))), radio.WithHops(hops),
		radio.WithFragmentation(threadFrame), radio.WithLatency(4*time.Millisecond, 4*time.Millisecond), radio.WithQueueLen(4096))
	if err != nil {
		return err
	}
	dir := filepath.Join(lab.Dir, "gateway")
	ca, err := pki.LoadCerts(filepath.Join(dir, gateway.FileDomainCA))
	if err != nil {
		return err
	}
	caKey, err := pki.LoadKey(filepath.Join(dir, gateway.FileDomainCAKey))
	if err != nil {
		return err
	}
	regChain, err := pki.LoadCerts(filepath.Join(dir, gateway.FileRegistrar))
	if err != nil {
		return err
	}
	regKey, err := pki.LoadKey(filepath.Join(dir, gateway.FileRegistrarKey))
	if err != nil {
		return err
	}
	// The Border Agent holds an LDevID of the same domain (CCM).
	baKey, err := pki.GenerateKey(nil)
	if err != nil {
		return err
	}
	baCert, err := pki.NewServerCert(time.Now(), &pki.Issuer{Cert: ca[0], Key: caKey}, baKey.Public(),
		pki.Profile{Subject: pkix.Name{CommonName: "Testbed Border Agent"}}, "border-agent")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca[0])
	l.ba, err = sim.New(sim.Config{Certificate: chainCert([]*x509.Certificate{baCert, ca[0]}, baKey), ClientCAs: pool,
		Log: l.log.With().Str("link", "thread").Logger()})
	if err != nil {
		return err
	}
	baPC, err := l.backbone.Listen(borderAgentAddr)
	if err != nil {
		return err
	}
	jrPC, err := l.thread.Listen(l.ba.JoinerRouterAddr())
	if err != nil {
		return err
	}
	l.goRun(func() error { return l.ba.Serve(ctx, baPC) })
	l.goRun(func() error { return l.ba.ServeJoiners(ctx, jrPC) })
	var n atomic.Int64
	l.comm, err = commissioner.New(commissioner.Config{BorderAgent: radio.Addr(borderAgentAddr), Certificate: chainCert(regChain, regKey),
		RootCAs: pool, AllowAll: true},
		commissioner.WithLogger(l.log.With().Str("link", "thread").Logger()),
		commissioner.WithBackoff(50*time.Millisecond, time.Second),
		commissioner.WithListen(func() (net.PacketConn, error) {
			return l.backbone.Listen(fmt.Sprintf("commissioner-%d:5684", n.Add(1)))
		}))
	if err != nil {
		return err
	}
	l.relay, err = relay.New(l.comm, relay.WithMaxJoiners(4096), relay.WithLogger(l.log.With().Str("link", "thread").Logger()))
	if err != nil {
		return err
	}
	l.comm.Handle(meshcop.PathRelayRx, l.relay)
	l.goRun(func() error { return l.comm.Run(ctx) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, _ := l.comm.State(); st == commissioner.Active {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the commissioner did not become active")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	l.goRun(func() error { return lab.Gateway.ServeDTLS(ctx, l.relay) })
	return nil
}

func chainCert(chain []*x509.Certificate, key any) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// startBLE: a simulated air with the gateway's BLE central.
func (l *links) startBLE(ctx context.Context, lab *Lab) error {
	var err error
	l.air, err = blesim.NewNetwork(blesim.WithSeed(l.o.Seed+7), blesim.WithATTMTU(23, 247),
		blesim.WithLatency(7500*time.Microsecond, 7500*time.Microsecond), blesim.WithDropRate(l.o.BLEDrop))
	if err != nil {
		return err
	}
	l.central, err = ble.NewCentral(ble.WithLogger(l.log.With().Str("link", "ble").Logger()), ble.WithMaxLinks(4096))
	if err != nil {
		return err
	}
	l.goRun(func() error { return l.central.Serve(ctx, l.air) })
	l.goRun(func() error { return lab.Gateway.ServeDTLS(ctx, l.central) })
	return nil
}

// Join proxy link addresses on the IP link.
const (
	jpAddr   = "join-proxy"
	jpyAddr  = "join-proxy-jpy"
	joinPort = 8485
)

// startIP: an IP link with a stateful and a stateless join proxy, each
// answering discovery; the registrar serves a JPY port too.
func (l *links) startIP(ctx context.Context, lab *Lab) error {
	var err error
	l.ip, err = radio.NewNetwork(radio.WithSeed(l.o.Seed+3), radio.WithLoss(l.o.Loss), radio.WithLatency(time.Millisecond, time.Millisecond),
		radio.WithQueueLen(4096))
	if err != nil {
		return err
	}
	jpy, err := loopbackUDP()
	if err != nil {
		return err
	}
	rc, err := joinproxy.NewRegistrarConn(jpy)
	if err != nil {
		jpy.Close()
		return err
	}
	l.goRun(func() error { return lab.Gateway.ServeDTLS(ctx, rc) })
	sp, err := joinproxy.NewStateful(lab.CoAPS, loopbackUDP, joinproxy.WithLimits(2, 4096))
	if err != nil {
		return err
	}
	sl, err := joinproxy.NewStateless(jpy.LocalAddr())
	if err != nil {
		return err
	}
	up, err := loopbackUDP()
	if err != nil {
		return err
	}
	for _, jp := range []struct {
		host  string
		serve func(link net.PacketConn) error
	}{
		{jpAddr, func(link net.PacketConn) error { return sp.Serve(ctx, link) }},
		{jpyAddr, func(link net.PacketConn) error { defer up.Close(); return sl.Serve(ctx, up, link) }},
	} {
		link, err := l.ip.Listen(fmt.Sprintf("%s:%d", jp.host, joinPort))
		if err != nil {
			return err
		}
		disc, err := l.ip.Listen(jp.host + ":5683")
		if err != nil {
			return err
		}
		srv, err := joinproxy.NewDiscovery(joinPort)
		if err != nil {
			return err
		}
		l.goRun(func() error { return jp.serve(link) })
		l.goRun(func() error { defer srv.Close(); return srv.ServeUDP(ctx, disc) })
	}
	return nil
}

// path is how one mote reaches the registrar.
type path struct {
	kind string
	// listen opens the mote's socket on its link.
	listen func() (net.PacketConn, error)
	// registrar finds the registrar's (or join proxy's) address.
	registrar func(ctx context.Context, p *mote.Pledge) (net.Addr, error)
}

// pathFor returns the path of the i-th mote of a kind.
func (l *links) pathFor(kind string, i int, serial string, lab *Lab) path {
	c := l.counters[kind]
	count := func(f func() (net.PacketConn, error)) func() (net.PacketConn, error) {
		return func() (net.PacketConn, error) {
			pc, err := f()
			if err != nil {
				return nil, err
			}
			return &countingConn{PacketConn: pc, c: c}, nil
		}
	}
	switch kind {
	case LinkThread:
		var eui meshcop.EUI64
		binary.BigEndian.PutUint64(eui[:], 0x18b4300000000000+uint64(i))
		addr := sim.JoinerAddr(meshcop.JoinerIDFromEUI64(eui))
		jr := radio.Addr(l.ba.JoinerRouterAddr())
		return path{kind: kind, listen: count(func() (net.PacketConn, error) { return l.thread.Listen(addr) }),
			registrar: func(context.Context, *mote.Pledge) (net.Addr, error) { return jr, nil }}
	case LinkBLE:
		return path{kind: kind, listen: count(l.air.Listen(serial)),
			registrar: func(context.Context, *mote.Pledge) (net.Addr, error) { return l.air.CentralAddr(), nil }}
	case LinkJP, LinkJPY:
		host := jpAddr
		if kind == LinkJPY {
			host = jpyAddr
		}
		return path{kind: kind, listen: count(func() (net.PacketConn, error) {
			return l.ip.Listen(fmt.Sprintf("pledge-%d:49152", l.next.Add(1)))
		}), registrar: func(ctx context.Context, p *mote.Pledge) (net.Addr, error) {
			return p.Discover(ctx, radio.Addr(host+":5683"))
		}}
	}
	return path{kind: LinkUDP, listen: count(loopbackUDP), registrar: func(ctx context.Context, p *mote.Pledge) (net.Addr, error) {
		return p.Discover(ctx, lab.CoAP)
	}}
}

// stats fills what the links counted into the per-kind reports.
func (l *links) stats(reps map[string]*LinkReport) {
	for kind, r := range reps {
		c := l.counters[kind]
		r.PledgeDatagrams, r.HandshakeRetransmissions = c.datagrams.Load(), c.retransmissions.Load()
	}
	if r := reps[LinkThread]; r != nil && l.thread != nil {
		s := l.thread.Stats()
		r.LinkDatagrams, r.LinkDropped = s.Sent, s.Dropped()
	}
	if r := reps[LinkBLE]; r != nil && l.air != nil {
		s, a := l.central.Stats(), l.air.Stats()
		r.LinkDatagrams, r.LinkDropped = s.DatagramsIn+s.DatagramsOut, a.Dropped+s.DroppedInbound+s.DroppedQueueFull+s.DroppedNoRoute
	}
	if l.ip != nil {
		// One IP link carries both join proxies' pledges.
		s := l.ip.Stats()
		for _, k := range []string{LinkJP, LinkJPY} {
			if r := reps[k]; r != nil {
				r.LinkDatagrams, r.LinkDropped = s.Sent, s.Dropped()
			}
		}
	}
}

// countingConn counts a mote's datagrams and the DTLS handshake messages
// it sends more than once (RFC 6347 §4.2.4: a retransmitted flight repeats
// its handshake messages' message_seq in epoch 0, where they are visible).
type countingConn struct {
	net.PacketConn
	c    *linkCounters
	mu   sync.Mutex
	seen map[uint64]bool
}

// DTLSFlightInterval passes on the link's hint (coap.FlightIntervalHinter),
// which embedding the interface would hide.
func (c *countingConn) DTLSFlightInterval() time.Duration {
	if h, ok := c.PacketConn.(coap.FlightIntervalHinter); ok {
		return h.DTLSFlightInterval()
	}
	return 0
}

func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.c.datagrams.Add(1)
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[uint64]bool{}
	}
	repeated := false
	for b := p; len(b) >= 13; {
		typ, epoch, n := b[0], binary.BigEndian.Uint16(b[3:5]), int(binary.BigEndian.Uint16(b[11:13]))
		if len(b) < 13+n {
			break
		}
		if typ == 22 && epoch == 0 && n >= 12 {
			// message_seq and fragment_offset: a message fragmented over
			// several records is not a retransmission.
			h := b[13:]
			key := uint64(binary.BigEndian.Uint16(h[4:6]))<<32 | uint64(h[6])<<16 | uint64(h[7])<<8 | uint64(h[8])
			if c.seen[key] {
				repeated = true
			}
			c.seen[key] = true
		}
		b = b[13+n:]
	}
	c.mu.Unlock()
	if repeated {
		c.c.retransmissions.Add(1)
	}
	return c.PacketConn.WriteTo(p, addr)
}
