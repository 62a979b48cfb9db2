package sim_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/commissioner"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	"github.com/tumbler-iot/tumbler/thread/relay"
	"github.com/tumbler-iot/tumbler/thread/sim"
)

// domain is a test Thread Domain: a CA, the Border Agent's certificate and
// the commissioner's (gateway's) domain certificate.
type domain struct {
	ca           *x509.Certificate
	pool         *x509.CertPool
	ba, gw       tls.Certificate
	issuer       *pki.Issuer
	registrarKey crypto.Signer
}

func newDomain(t *testing.T) *domain {
	t.Helper()
	now := time.Now()
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(now, key, pki.Profile{Subject: pkix.Name{CommonName: "Thread Domain CA"}})
	if err != nil {
		t.Fatal(err)
	}
	d := &domain{ca: ca, pool: x509.NewCertPool(), issuer: &pki.Issuer{Cert: ca, Key: key}}
	d.pool.AddCert(ca)
	d.ba = d.issue(t, "Border Agent")
	d.gw = d.issue(t, "Tumbler gateway")
	return d
}

// issue makes a domain certificate with serverAuth and clientAuth.
func (d *domain) issue(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewRegistrarCert(time.Now(), d.issuer, key.Public(), pki.Profile{Subject: pkix.Name{CommonName: cn}})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw, d.ca.Raw}, PrivateKey: key, Leaf: cert}
}

// thread is a simulated Thread network with a Border Agent, a Joiner
// Router, and Tumbler's commissioner and relay in front of it.
type thread struct {
	net   *radio.Network
	ba    *sim.BorderAgent
	comm  *commissioner.Commissioner
	relay *relay.Conn
	dom   *domain
	wg    sync.WaitGroup
	errs  chan error
	// The Border Agent and the commissioner stop separately: a
	// commissioner resigning needs a Border Agent that still runs.
	ctx        context.Context
	cancelBA   context.CancelFunc
	cancelComm context.CancelFunc
	commDone   chan struct{}
}

const baAddr = "border-agent:49191"

type threadOptions struct {
	commOpts  []commissioner.Option
	relayOpts []relay.Option
	cfg       func(*commissioner.Config)
	simNow    func() time.Time
	noComm    bool
}

func startThread(t *testing.T, ctx context.Context, o threadOptions) *thread {
	t.Helper()
	nw, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	th := &thread{net: nw, dom: newDomain(t), errs: make(chan error, 8), commDone: make(chan struct{})}
	th.ctx, th.cancelBA = context.WithCancel(ctx)
	var commCtx context.Context
	commCtx, th.cancelComm = context.WithCancel(ctx)
	ctx = th.ctx
	th.ba, err = sim.New(sim.Config{Certificate: th.dom.ba, ClientCAs: th.dom.pool, Log: testLog(t), Now: o.simNow})
	if err != nil {
		t.Fatal(err)
	}
	baPC, err := nw.Listen(baAddr)
	if err != nil {
		t.Fatal(err)
	}
	jrPC, err := nw.Listen(th.ba.JoinerRouterAddr())
	if err != nil {
		t.Fatal(err)
	}
	th.goRun(func() error { return th.ba.Serve(ctx, baPC) })
	th.goRun(func() error { return th.ba.ServeJoiners(ctx, jrPC) })
	if o.noComm {
		close(th.commDone)
		return th
	}
	var n atomic.Int64
	cfg := commissioner.Config{
		BorderAgent: radio.Addr(baAddr), ID: "Tumbler", Certificate: th.dom.gw, RootCAs: th.dom.pool, AllowAll: true,
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	opts := append([]commissioner.Option{
		commissioner.WithLogger(testLog(t)),
		commissioner.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		commissioner.WithListen(func() (net.PacketConn, error) {
			return nw.Listen(fmt.Sprintf("commissioner-%d:5684", n.Add(1)))
		}),
	}, o.commOpts...)
	th.comm, err = commissioner.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	th.relay, err = relay.New(th.comm, append([]relay.Option{relay.WithLogger(testLog(t))}, o.relayOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	th.comm.Handle(meshcop.PathRelayRx, th.relay)
	go func() {
		defer close(th.commDone)
		if err := th.comm.Run(commCtx); err != nil {
			th.errs <- err
		}
	}()
	return th
}

// stopCommissioner ends the commissioner's Run (it resigns) and waits.
func (th *thread) stopCommissioner(t *testing.T) {
	t.Helper()
	th.cancelComm()
	select {
	case <-th.commDone:
	case <-time.After(15 * time.Second):
		t.Fatal("commissioner did not stop")
	}
}

func (th *thread) goRun(f func() error) {
	th.wg.Add(1)
	go func() {
		defer th.wg.Done()
		if err := f(); err != nil {
			th.errs <- err
		}
	}()
}

// stop stops the commissioner, then the Border Agent and everything
// started with goRun, and closes the link.
func (th *thread) stop(t *testing.T) {
	t.Helper()
	th.stopCommissioner(t)
	th.cancelBA()
	done := make(chan struct{})
	go func() { th.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("thread network did not stop")
	}
	if th.relay != nil {
		th.relay.Close()
	}
	th.net.Close()
	close(th.errs)
	for err := range th.errs {
		t.Errorf("serve: %v", err)
	}
}

// waitActive waits until the Border Agent's leader has the commissioner
// active with the wanted steering data.
func (th *thread) waitActive(t *testing.T, want meshcop.SteeringData) uint16 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		id, sid, sd, ok := th.ba.Commissioner()
		st, csid := th.comm.State()
		if ok && id == "Tumbler" && sd.String() == want.String() && st == commissioner.Active && csid == sid {
			return sid
		}
		time.Sleep(5 * time.Millisecond)
	}
	id, sid, sd, ok := th.ba.Commissioner()
	st, csid := th.comm.State()
	t.Fatalf("not active: leader %q %d %v %v; commissioner %v %d", id, sid, sd, ok, st, csid)
	return 0
}

func testLog(t *testing.T) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}
