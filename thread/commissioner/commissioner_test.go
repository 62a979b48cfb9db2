package commissioner_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/commissioner"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	"github.com/tumbler-iot/tumbler/thread/sim"
)

// fakeClock drives the commissioner's timers and the simulated leader's
// clock together.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*waiter
}

type waiter struct {
	at time.Time
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &waiter{at: c.now.Add(d), d: d, ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- c.now
		return w.ch
	}
	c.waiters = append(c.waiters, w)
	return w.ch
}

// Advance moves time and fires due timers.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// pending returns the durations of unfired timers, shortest first.
func (c *fakeClock) pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, w := range c.waiters {
		ds = append(ds, w.d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

type env struct {
	clock *fakeClock
	ba    *sim.BorderAgent
	comm  *commissioner.Commissioner
	net   *radio.Network
	ca    *x509.CertPool
	gw    tls.Certificate

	cancelBA, cancelComm context.CancelFunc
	baDone, commDone     chan struct{}
	states               chan commissioner.State
}

func certs(t *testing.T) (*x509.CertPool, tls.Certificate, tls.Certificate) {
	t.Helper()
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "Thread Domain CA"}})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(cn string) tls.Certificate {
		k, err := pki.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.NewRegistrarCert(time.Now(), &pki.Issuer{Cert: ca, Key: key}, k.Public(), pki.Profile{Subject: pkix.Name{CommonName: cn}})
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw, ca.Raw}, PrivateKey: k, Leaf: c}
	}
	return pool, issue("Border Agent"), issue("gateway")
}

func start(t *testing.T, cfg func(*commissioner.Config, *sim.BorderAgent), opts ...commissioner.Option) *env {
	t.Helper()
	pool, baCert, gwCert := certs(t)
	nw, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{clock: newFakeClock(), net: nw, ca: pool, gw: gwCert, baDone: make(chan struct{}), commDone: make(chan struct{}),
		states: make(chan commissioner.State, 64)}
	e.ba, err = sim.New(sim.Config{Certificate: baCert, ClientCAs: pool, Now: e.clock.Now, Log: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	baPC, err := nw.Listen("ba:49191")
	if err != nil {
		t.Fatal(err)
	}
	var baCtx, commCtx context.Context
	baCtx, e.cancelBA = context.WithCancel(context.Background())
	commCtx, e.cancelComm = context.WithCancel(context.Background())
	go func() { defer close(e.baDone); _ = e.ba.Serve(baCtx, baPC) }()
	c := commissioner.Config{BorderAgent: radio.Addr("ba:49191"), Certificate: gwCert, RootCAs: pool, AllowAll: true}
	if cfg != nil {
		cfg(&c, e.ba)
	}
	var n atomic.Int64
	r := rand.New(rand.NewPCG(1, 2))
	e.comm, err = commissioner.New(c, append([]commissioner.Option{
		commissioner.WithClock(e.clock),
		commissioner.WithRand(readerFunc(func(b []byte) (int, error) {
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return len(b), nil
		})),
		commissioner.WithLogger(logger(t)),
		commissioner.WithBackoff(100*time.Millisecond, time.Second),
		commissioner.WithListen(func() (net.PacketConn, error) { return nw.Listen(fmt.Sprintf("gw-%d:1", n.Add(1))) }),
		commissioner.WithStateFunc(func(s commissioner.State, _ uint16) {
			select {
			case e.states <- s:
			default:
			}
		}),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(e.commDone)
		if err := e.comm.Run(commCtx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		e.cancelComm()
		<-e.commDone
		e.cancelBA()
		<-e.baDone
		nw.Close()
	})
	return e
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func logger(t *testing.T) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

// eventually polls cond for up to 10 s of real time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// active waits until commissioner and leader agree on an active session
// with steering want, and returns the session ID.
func (e *env) active(t *testing.T, want meshcop.SteeringData) uint16 {
	t.Helper()
	var sid uint16
	eventually(t, "active commissioner", func() bool {
		id, lsid, sd, ok := e.ba.Commissioner()
		st, csid := e.comm.State()
		sid = lsid
		return ok && id == commissioner.DefaultID && st == commissioner.Active && csid == lsid && sd.String() == want.String()
	})
	return sid
}

// keepAliveTimer waits for the keep-alive timer to be armed and returns
// its duration.
func (e *env) keepAliveTimer(t *testing.T) time.Duration {
	t.Helper()
	var d time.Duration
	eventually(t, "keep-alive timer", func() bool {
		p := e.clock.pending()
		if len(p) == 0 {
			return false
		}
		d = p[len(p)-1]
		return d >= time.Second*29
	})
	return d
}

func TestPetitionSteeringKeepAlive(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	eui, _ := meshcop.ParseEUI64("18b4300000000002")
	id := meshcop.JoinerIDFromEUI64(eui)
	e := start(t, func(c *commissioner.Config, _ *sim.BorderAgent) {
		c.AllowAll, c.Joiners = false, []meshcop.JoinerID{id}
	})
	sid := e.active(t, meshcop.SteeringFor(id))
	if sd := e.comm.Steering(); !sd.Contains(id) || sd.AllowsAll() {
		t.Fatalf("steering %v", sd)
	}
	for i := range 5 {
		d := e.keepAliveTimer(t)
		if d < 30*time.Second || d > 45*time.Second {
			t.Fatalf("keep-alive %d after %v, want 30–45 s", i, d)
		}
		before := e.ba.Stats().KeepAlives
		e.clock.Advance(d - time.Second)
		time.Sleep(20 * time.Millisecond)
		if e.ba.Stats().KeepAlives != before {
			t.Fatal("keep-alive sent early")
		}
		e.clock.Advance(time.Second)
		eventually(t, "keep-alive", func() bool { return e.ba.Stats().KeepAlives == before+1 })
	}
	if got := e.active(t, meshcop.SteeringFor(id)); got != sid {
		t.Fatalf("session changed %d -> %d", sid, got)
	}
	// New joiners are published at once.
	all := meshcop.AllowAll()
	e.comm.SetJoiners(nil, true)
	e.active(t, all)
	// Shutdown resigns.
	e.cancelComm()
	<-e.commDone
	if s := e.ba.Stats(); s.Resigns != 1 {
		t.Fatalf("resigns %d", s.Resigns)
	}
	if st, _ := e.comm.State(); st != commissioner.Stopped {
		t.Fatalf("state %v", st)
	}
}

// TestLeaderTimeoutRepetition: keep-alives that stop for more than 50 s
// lose the role at the leader; the next keep-alive is rejected and the
// commissioner petitions again and gets a new session ID.
func TestLeaderTimeoutRepetition(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	e := start(t, nil)
	sid := e.active(t, meshcop.AllowAll())
	e.keepAliveTimer(t)
	e.clock.Advance(51 * time.Second) // the leader drops us before our keep-alive goes out
	eventually(t, "rejected keep-alive", func() bool {
		st, _ := e.comm.State()
		return st == commissioner.Petitioning
	})
	// Petition again after backoff.
	eventually(t, "re-petition", func() bool {
		e.clock.Advance(time.Second)
		_, got, _, ok := e.ba.Commissioner()
		st, _ := e.comm.State()
		return ok && got != sid && st == commissioner.Active
	})
	e.active(t, meshcop.AllowAll())
}

// TestPetitionRejected: another commissioner holds the role; ours keeps
// petitioning with backoff and takes over when the other times out.
func TestPetitionRejected(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	e := start(t, func(_ *commissioner.Config, ba *sim.BorderAgent) {
		if !ba.PetitionOther("phone") {
			t.Fatal("leader busy")
		}
	}, commissioner.WithBackoff(time.Second, 2*time.Second))
	eventually(t, "rejected petition", func() bool { return e.ba.Stats().Petitions >= 1 })
	if st, _ := e.comm.State(); st == commissioner.Active {
		t.Fatal("active while another commissioner holds the role")
	}
	// The phone goes away without resigning; after 50 s the leader frees
	// the role and the next petition wins.
	e.clock.Advance(51 * time.Second)
	eventually(t, "take over", func() bool {
		e.clock.Advance(time.Second)
		id, _, _, ok := e.ba.Commissioner()
		return ok && id == commissioner.DefaultID
	})
	e.active(t, meshcop.AllowAll())
}

// TestSessionLossReconnects: the Border Agent drops the DTLS session; the
// commissioner redials, petitions again (same ID: the leader replaces the
// old session) and republishes its steering data.
func TestSessionLossReconnects(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	e := start(t, nil)
	sid := e.active(t, meshcop.AllowAll())
	e.ba.Disconnect()
	eventually(t, "reconnect", func() bool {
		e.clock.Advance(200 * time.Millisecond)
		_, got, _, ok := e.ba.Commissioner()
		st, csid := e.comm.State()
		return ok && got != sid && st == commissioner.Active && csid == got
	})
	e.active(t, meshcop.AllowAll())
}

func TestConfigValidation(t *testing.T) {
	pool, _, gw := certs(t)
	good := commissioner.Config{BorderAgent: radio.Addr("ba:1"), Certificate: gw, RootCAs: pool}
	for name, mut := range map[string]func(*commissioner.Config){
		"no border agent": func(c *commissioner.Config) { c.BorderAgent = nil },
		"long ID":         func(c *commissioner.Config) { c.ID = string(make([]byte, 65)) },
		"no certificate":  func(c *commissioner.Config) { c.Certificate = tls.Certificate{} },
		"no roots":        func(c *commissioner.Config) { c.RootCAs = nil },
	} {
		c := good
		mut(&c)
		if _, err := commissioner.New(c); !errors.Is(err, commissioner.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, o := range map[string]commissioner.Option{
		"keep-alive above 45 s": commissioner.WithKeepAlive(30*time.Second, 50*time.Second),
		"keep-alive inverted":   commissioner.WithKeepAlive(40*time.Second, 30*time.Second),
		"backoff zero":          commissioner.WithBackoff(0, time.Second),
		"steering type":         commissioner.WithSteeringTypes(meshcop.TypeState),
		"nil clock":             commissioner.WithClock(nil),
		"nil option":            nil,
	} {
		if _, err := commissioner.New(good, o); !errors.Is(err, commissioner.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := commissioner.New(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Notify(context.Background(), nil); !errors.Is(err, commissioner.ErrNotConnected) {
		t.Fatalf("Notify before Run: %v", err)
	}
}
