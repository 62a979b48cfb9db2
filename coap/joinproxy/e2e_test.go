package joinproxy_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/internal/testpki"
	"github.com/tumbler-iot/tumbler/coap/joinproxy"
	"github.com/tumbler-iot/tumbler/testbed"
	"github.com/tumbler-iot/tumbler/testbed/mote"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// group runs servers in the background and stops them at the end of the
// test: cancel, then wait, then report their errors.
type group struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGroup(t *testing.T) *group {
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{t: t, ctx: ctx, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		g.wg.Wait()
	})
	return g
}

func (g *group) Go(name string, f func(context.Context) error) {
	g.wg.Go(func() {
		if err := f(g.ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.t.Errorf("%s: %v", name, err)
		}
	})
}

func loopback() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

func mustLoopback(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := loopback()
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// startJoinProxy starts a join proxy of the given mode toward registrar on
// loopback UDP, with its discovery server. It returns the discovery
// address and the proxy's Stats.
func startJoinProxy(t *testing.T, g *group, mode string, registrar net.Addr) (net.Addr, func() joinproxy.Stats) {
	t.Helper()
	link, disc := mustLoopback(t), mustLoopback(t)
	port, ok := joinproxy.Port(link.LocalAddr())
	if !ok {
		t.Fatalf("no port in %v", link.LocalAddr())
	}
	srv, err := joinproxy.NewDiscovery(port)
	if err != nil {
		t.Fatal(err)
	}
	g.Go("discovery", func(ctx context.Context) error { return srv.ServeUDP(ctx, disc) })
	var stats func() joinproxy.Stats
	switch mode {
	case "stateful":
		p, err := joinproxy.NewStateful(registrar, loopback)
		if err != nil {
			t.Fatal(err)
		}
		g.Go("stateful", func(ctx context.Context) error { return p.Serve(ctx, link) })
		stats = p.Stats
	case "stateless":
		p, err := joinproxy.NewStateless(registrar)
		if err != nil {
			t.Fatal(err)
		}
		up := mustLoopback(t)
		g.Go("stateless", func(ctx context.Context) error { return p.Serve(ctx, up, link) })
		stats = p.Stats
	}
	return disc.LocalAddr(), stats
}

// TestOnboardThroughJoinProxy onboards testbed motes (real cBRSKI: voucher
// from the lab MASA, EST enrollment) with a real gateway, through a
// stateful and a stateless join proxy, discovering the join port at the
// proxy as cBRSKI -31 specifies.
func TestOnboardThroughJoinProxy(t *testing.T) {
	for _, mode := range []string{"stateful", "stateless"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			lab, err := testbed.StartLab(ctx, t.TempDir(), testbed.LabOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := lab.Close(); err != nil {
					t.Error(err)
				}
			})
			g := newGroup(t) // stops before the lab closes

			registrar := lab.CoAPS
			var rc *joinproxy.RegistrarConn
			if mode == "stateless" {
				// What the gateway will do on its JPY port.
				jpy := mustLoopback(t)
				if rc, err = joinproxy.NewRegistrarConn(jpy); err != nil {
					t.Fatal(err)
				}
				registrar = jpy.LocalAddr()
				g.Go("registrar JPY", func(ctx context.Context) error { return lab.Gateway.ServeDTLS(ctx, rc) })
			}
			disc, stats := startJoinProxy(t, g, mode, registrar)

			for i := range 2 {
				serial := fmt.Sprintf("JP-%s-%d", mode, i)
				cert, key, err := lab.MASA.IssueIDevID(serial)
				if err != nil {
					t.Fatal(err)
				}
				p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: lab.MASA.CA()},
					mote.Config{Listen: loopback})
				if err != nil {
					t.Fatal(err)
				}
				join, err := p.Discover(ctx, disc)
				if err != nil {
					t.Fatal(err)
				}
				enr, _, err := p.Onboard(ctx, join)
				if err != nil {
					t.Fatalf("%s: %v", serial, err)
				}
				if enr.LDevID == nil || enr.LDevID.Subject.SerialNumber != serial {
					t.Fatalf("%s: LDevID %v", serial, enr.LDevID)
				}
			}
			st := stats()
			if st.Up == 0 || st.Down == 0 {
				t.Fatalf("join proxy stats %+v", st)
			}
			for r, n := range st.Dropped {
				if n != 0 {
					t.Errorf("join proxy dropped %d (%s)", n, r)
				}
			}
			if rc != nil {
				if rst := rc.Stats(); rst.Active != 2 {
					t.Fatalf("registrar saw %d JPY peers, want 2", rst.Active)
				}
			}
		})
	}
}

// TestDiscovery: the join proxy answers the pledge's discovery query with
// its join port and nothing else; testbed/mote's Discover uses it.
func TestDiscovery(t *testing.T) {
	n, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	g := newGroup(t)
	pc, err := n.Listen("jp:5683")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := joinproxy.NewDiscovery(8485)
	if err != nil {
		t.Fatal(err)
	}
	g.Go("discovery", func(ctx context.Context) error { return srv.ServeUDP(ctx, pc) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cpc, err := n.Listen("pledge:49152")
	if err != nil {
		t.Fatal(err)
	}
	c, err := coap.DialUDP(ctx, cpc, radio.Addr("jp:5683"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		query []string
		want  string
	}{
		{[]string{"brski-jp=*"}, "<>;brski-jp=8485"},
		{nil, "<>;brski-jp=8485"},
		{[]string{"rt=brski*"}, ""},
	} {
		resp, err := c.Do(ctx, &coap.Request{Method: codes.GET, Path: coap.WellKnownCore, Query: tc.query,
			ContentFormat: coap.FormatNone, Accept: coap.FormatNone})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != codes.Content || resp.ContentFormat != coap.FormatLinkFormat || string(resp.Payload) != tc.want {
			t.Fatalf("GET ?%v: %v CF %d %q, want %q", tc.query, resp.Code, resp.ContentFormat, resp.Payload, tc.want)
		}
	}

	// Through testbed/mote.
	id, err := labIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var seq int
	p, err := mote.New(id, mote.Config{Listen: func() (net.PacketConn, error) {
		seq++
		return n.Listen(fmt.Sprintf("mote:%d", 50000+seq))
	}})
	if err != nil {
		t.Fatal(err)
	}
	join, err := p.Discover(ctx, radio.Addr("jp:5683"))
	if err != nil {
		t.Fatal(err)
	}
	if join.String() != "jp:8485" {
		t.Fatalf("mote discovered %v, want jp:8485", join)
	}

	if _, err := joinproxy.NewDiscovery(0); !errors.Is(err, joinproxy.ErrInvalidOption) {
		t.Fatalf("NewDiscovery(0) = %v", err)
	}
}

// labIdentity is a pledge identity from a throwaway manufacturer CA.
func labIdentity() (mote.Identity, error) {
	ca, err := testpki.NewRoot("Manufacturer CA")
	if err != nil {
		return mote.Identity{}, err
	}
	cert, err := ca.Client("pledge-1")
	if err != nil {
		return mote.Identity{}, err
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return mote.Identity{}, fmt.Errorf("key %T is not a crypto.Signer", cert.PrivateKey)
	}
	return mote.Identity{Chain: []*x509.Certificate{cert.Leaf}, Key: key, Manufacturer: ca.Cert}, nil
}
