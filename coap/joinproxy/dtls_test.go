package joinproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/internal/testpki"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// pki is a manufacturer CA for pledges and a registrar certificate.
type pki struct {
	manufacturer *testpki.CA
	registrar    tls.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  pki
	pkiErr  error
)

func testPKI(t testing.TB) pki {
	t.Helper()
	pkiOnce.Do(func() {
		if pkiVal.manufacturer, pkiErr = testpki.NewRoot("Manufacturer CA"); pkiErr != nil {
			return
		}
		var domain *testpki.CA
		if domain, pkiErr = testpki.NewRoot("Domain CA"); pkiErr != nil {
			return
		}
		pkiVal.registrar, pkiErr = domain.Server("registrar.example")
	})
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

// peerLog records the peer addresses the registrar's handler saw.
type peerLog struct {
	mu    sync.Mutex
	addrs []net.Addr
}

func (l *peerLog) add(a net.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrs = append(l.addrs, a)
}

func (l *peerLog) all() []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]net.Addr(nil), l.addrs...)
}

// startRegistrar serves a DTLS registrar stand-in on pc: /hello answers
// with the pledge's certificate subject, /echo returns the payload.
func startRegistrar(t *testing.T, pc net.PacketConn) *peerLog {
	t.Helper()
	p := testPKI(t)
	seen := &peerLog{}
	mux := coap.NewMux()
	mux.HandleFunc("/hello", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		seen.add(r.Peer.Addr)
		return coap.Content(coap.FormatText, []byte("hello "+r.Peer.Chain[0].Subject.CommonName)), nil
	}, coap.Link{})
	mux.HandleFunc("/echo", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		return coap.Changed(coap.FormatCBOR, r.Payload), nil
	}, coap.Link{}, codes.POST)
	srv, err := coap.NewServer(mux, coap.WithDTLS(coap.DTLSConfig{Certificate: p.registrar, ClientCAs: p.manufacturer.Pool()}))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return srv.ServeDTLS(ctx, pc) })
	return seen
}

// onboard runs a pledge's DTLS session through the join port: a greeting
// and a block-wise echo both ways.
func onboard(t *testing.T, pc net.PacketConn, join string, name string) {
	t.Helper()
	ctx := testContext(t)
	cert, err := testPKI(t).manufacturer.Client(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := coap.DialDTLS(ctx, pc, radio.Addr(join), coap.ClientDTLSConfig{Certificate: cert, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(ctx, "/hello", coap.FormatNone)
	if err != nil || string(resp.Payload) != "hello "+name {
		t.Fatalf("hello: %v %v", resp, err)
	}
	body := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, 1000)
	resp, err = c.Post(ctx, "/echo", coap.FormatCBOR, body, coap.FormatNone)
	if err != nil || !bytes.Equal(resp.Payload, body) {
		t.Fatalf("echo: %v", err)
	}
}

// TestDTLSThroughStateful: two pledges run DTLS sessions to a registrar
// through a stateful join proxy; the registrar sees each at its own
// circuit address.
func TestDTLSThroughStateful(t *testing.T) {
	e := newEnv(t)
	seen := startRegistrar(t, e.listen(t, "reg:5684"))
	p := startStateful(t, e, []net.PacketConn{e.listen(t, "jp:8485")})
	onboard(t, e.listen(t, "p1:49152"), "jp:8485", "pledge-1")
	onboard(t, e.listen(t, "p2:49152"), "jp:8485", "pledge-2")
	peers := seen.all()
	if len(peers) != 2 || peers[0].String() == peers[1].String() {
		t.Fatalf("registrar saw %v", peers)
	}
	st := p.Stats()
	if st.Active != 2 || st.Up == 0 || st.Down == 0 {
		t.Fatalf("stats %+v", st)
	}
	if s := e.net.Stats(); s.DroppedMTU != 0 {
		t.Fatalf("%d datagrams above the link MTU", s.DroppedMTU)
	}
}

// TestDTLSThroughStateless: the same through a stateless join proxy into
// the unchanged DTLS server over a RegistrarConn.
func TestDTLSThroughStateless(t *testing.T) {
	e := newEnv(t)
	rc, err := NewRegistrarConn(e.listen(t, "reg:7634"))
	if err != nil {
		t.Fatal(err)
	}
	seen := startRegistrar(t, rc)
	p := startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")})
	onboard(t, e.listen(t, "p1:49152"), "jp:8485", "pledge-1")
	onboard(t, e.listen(t, "p2:49152"), "jp:8485", "pledge-2")
	peers := seen.all()
	if len(peers) != 2 {
		t.Fatalf("registrar saw %v", peers)
	}
	for _, a := range peers {
		pa, ok := a.(*PeerAddr)
		if !ok || pa.JoinProxy().String() != "jp-up:5000" {
			t.Fatalf("registrar peer %v (%T), want a PeerAddr behind jp-up:5000", a, a)
		}
	}
	if peers[0].String() == peers[1].String() {
		t.Fatalf("two pledges, one peer %v", peers[0])
	}
	if st := rc.Stats(); st.Active != 2 {
		t.Fatalf("registrar conn stats %+v", st)
	}
	if st := p.Stats(); st.Up == 0 || st.Down == 0 || st.Dropped[ReasonBadHeader] != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s := e.net.Stats(); s.DroppedMTU != 0 {
		t.Fatalf("%d datagrams above the link MTU", s.DroppedMTU)
	}
}
