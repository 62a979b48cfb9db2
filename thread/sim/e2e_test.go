package sim_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	"github.com/tumbler-iot/tumbler/thread/relay"
	"github.com/tumbler-iot/tumbler/thread/sim"
)

// manufacturer issues pledge IDevIDs.
type manufacturer struct {
	issuer *pki.Issuer
	pool   *x509.CertPool
}

func newManufacturer(t *testing.T) *manufacturer {
	t.Helper()
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "Manufacturer CA"}})
	if err != nil {
		t.Fatal(err)
	}
	m := &manufacturer{issuer: &pki.Issuer{Cert: ca, Key: key}, pool: x509.NewCertPool()}
	m.pool.AddCert(ca)
	return m
}

func (m *manufacturer) idevid(t *testing.T, serial string) tls.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewIDevID(time.Now(), m.issuer, key.Public(), pki.IDevIDProfile{SerialNumber: serial})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// TestRelayEndToEnd: a joiner's DTLS client on the simulated link reaches
// a DTLS CoAP server that serves the relay PacketConn, through the Joiner
// Router, RLY_RX/RLY_TX on the commissioner session, and the relay; a
// request and its response go through; the server sees the joiner as a
// relay.Addr with the CCM cBRSKI port 993. On shutdown the commissioner
// resigns.
func TestRelayEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	th := startThread(t, ctx, threadOptions{})
	th.waitActive(t, meshcop.AllowAll())

	mfr := newManufacturer(t)
	seen := make(chan relay.Addr, 1)
	mux := coap.NewMux()
	mux.HandleFunc("/hello", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		a, ok := r.Peer.Addr.(relay.Addr)
		if !ok {
			return nil, coap.Errorf(codes.InternalServerError, "peer is not a relay.Addr", nil)
		}
		select {
		case seen <- a:
		default:
		}
		return coap.Changed(coap.FormatText, append([]byte("hello "), r.Payload...)), nil
	}, coap.Link{}, codes.POST)
	registrar := th.dom.issue(t, "registrar")
	srv, err := coap.NewServer(mux, coap.WithDTLS(coap.DTLSConfig{Certificate: registrar, ClientCAs: mfr.pool}))
	if err != nil {
		t.Fatal(err)
	}
	th.goRun(func() error { return srv.ServeDTLS(th.ctx, th.relay) })

	eui, _ := meshcop.ParseEUI64("18b4300000000002")
	id := meshcop.JoinerIDFromEUI64(eui)
	pc, err := th.net.Listen(sim.JoinerAddr(id))
	if err != nil {
		t.Fatal(err)
	}
	client, err := coap.DialDTLS(ctx, pc, radio.Addr(th.ba.JoinerRouterAddr()),
		coap.ClientDTLSConfig{Certificate: mfr.idevid(t, "J-0001"), InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(ctx, "/hello", coap.FormatText, []byte("thread"), coap.FormatNone)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Changed || string(resp.Payload) != "hello thread" {
		t.Fatalf("%v %q", coap.Dotted(resp.Code), resp.Payload)
	}
	a := <-seen
	if a.Port != relay.CBRSKIJoinerPort || a.Locator != sim.DefaultLocator || meshcop.JoinerIDFromIID(a.IID) != id {
		t.Fatalf("registrar saw %v", a)
	}
	client.Close()

	// The client's close_notify may still be on its way through the Border
	// Agent: let the counters settle before comparing them.
	rs, bs := th.relay.Stats(), th.ba.Stats()
	for deadline := time.Now().Add(5 * time.Second); (bs.RelayedRx != rs.Received || bs.RelayedTx != rs.Sent) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		rs, bs = th.relay.Stats(), th.ba.Stats()
	}
	if rs.Received == 0 || rs.Sent == 0 || rs.Malformed != 0 || rs.UnknownJoiner != 0 {
		t.Fatalf("relay stats %+v", rs)
	}
	if bs.RelayedRx != rs.Received || bs.RelayedTx != rs.Sent || bs.DroppedTx != 0 || bs.KEKs != 0 {
		t.Fatalf("border agent stats %+v, relay %+v", bs, rs)
	}

	th.stopCommissioner(t)
	srv.Close()
	th.stop(t)
	if bs := th.ba.Stats(); bs.Resigns != 1 {
		t.Fatalf("resigns %d, want 1", bs.Resigns)
	}
	if _, _, _, active := th.ba.Commissioner(); active {
		t.Fatal("leader still has an active commissioner after resign")
	}
}

// TestJoinerDroppedWhileJoiningDisabled: before the commissioner is active
// (and with steering data that admits nobody), the Joiner Router does not
// relay.
func TestJoinerDroppedWhileJoiningDisabled(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	th := startThread(t, ctx, threadOptions{noComm: true})
	pc, err := th.net.Listen(sim.JoinerAddr(meshcop.JoinerID{1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo([]byte{22, 0xfe, 0xfd}, radio.Addr(th.ba.JoinerRouterAddr())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for th.ba.Stats().DroppedJoining == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := th.ba.Stats(); s.DroppedJoining != 1 || s.RelayedRx != 0 {
		t.Fatalf("%+v", s)
	}
	pc.Close()
	th.stop(t)
}
