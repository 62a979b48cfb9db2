package upstream

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// received is one PUBLISH a broker accepted.
type received struct {
	topic, contentType, recordID string
	payload                      []byte
}

// brokerHook authenticates, accepts and records publishes for a mochi
// broker, with hooks for the tests to refuse connections and publishes.
type brokerHook struct {
	mqtt.HookBase
	keep bool // record accepted publishes

	mu        sync.Mutex
	msgs      []received
	auths     int
	publish   int
	authOK    func(attempt int, user, pass string) bool
	onPublish func(n int, pk packets.Packet) error // n counts publishes from 1
}

func (h *brokerHook) ID() string { return "tumbler-test" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPublished}, []byte{b})
}

func (h *brokerHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	h.mu.Lock()
	h.auths++
	n, fn := h.auths, h.authOK
	h.mu.Unlock()
	return fn == nil || fn(n, string(pk.Connect.Username), string(pk.Connect.Password))
}

func (h *brokerHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *brokerHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	h.publish++
	n, fn := h.publish, h.onPublish
	h.mu.Unlock()
	if fn != nil {
		if err := fn(n, pk); err != nil {
			return pk, err
		}
	}
	return pk, nil
}

func (h *brokerHook) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if !h.keep {
		return
	}
	m := received{topic: pk.TopicName, contentType: pk.Properties.ContentType, payload: bytes.Clone(pk.Payload)}
	for _, u := range pk.Properties.User {
		if u.Key == UserPropertyRecordID {
			m.recordID = u.Val
		}
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}

func (h *brokerHook) received() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.msgs...)
}

func (h *brokerHook) authAttempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.auths
}

// mochiBroker is an in-process broker on a fixed loopback address.
type mochiBroker struct {
	t      testing.TB
	addr   string
	tlsCfg *tls.Config
	hook   *brokerHook
	srv    *mqtt.Server
}

// startMochi serves a mochi broker on addr with hook; it is closed when
// the test ends.
func startMochi(t testing.TB, addr string, hook *brokerHook, tlsCfg *tls.Config) *mochiBroker {
	t.Helper()
	b := &mochiBroker{t: t, addr: addr, tlsCfg: tlsCfg, hook: hook}
	b.start()
	t.Cleanup(b.close)
	return b
}

func (b *mochiBroker) listener() *listeners.TCP {
	return listeners.NewTCP(listeners.Config{Type: "tcp", ID: "t1", Address: b.addr, TLSConfig: b.tlsCfg})
}

func (b *mochiBroker) start() {
	b.t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(b.hook, nil); err != nil {
		b.t.Fatal(err)
	}
	if err := srv.AddListener(b.listener()); err != nil {
		b.t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		b.t.Fatal(err)
	}
	b.srv = srv
}

// close stops the broker. mochi v2.7.9 adds to its clients WaitGroup in
// each accepted connection's goroutine while Close waits on it, a race
// when a client is connecting at that moment (the sinks reconnect every
// few milliseconds). So close stops accepting first and gives goroutines
// already accepted a moment to register before Close waits.
func (b *mochiBroker) close() {
	if b.srv == nil {
		return
	}
	b.stopListener()
	time.Sleep(20 * time.Millisecond)
	b.srv.Close()
	b.srv = nil
}

// stopListener closes the listener and drops its clients.
func (b *mochiBroker) stopListener() {
	srv := b.srv
	srv.Listeners.Close("t1", func(id string) {
		for _, cl := range srv.Clients.GetByListener(id) {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	})
}

// restartListener drops every connection and re-listens on the same port,
// keeping the broker and its sessions.
func (b *mochiBroker) restartListener() {
	b.t.Helper()
	srv := b.srv
	b.stopListener()
	srv.Listeners.Delete("t1")
	if err := srv.AddListener(b.listener()); err != nil {
		b.t.Fatal(err)
	}
	srv.Listeners.Serve("t1", srv.EstablishConnection)
}

// replace closes the broker and starts a new one (no sessions) on the
// same port.
func (b *mochiBroker) replace() {
	b.close()
	b.start()
}

// testPKI writes a CA, a server certificate for "broker.test" and a client
// certificate to dir and returns the server's TLS config (requiring a
// client certificate from the CA) and the file paths.
func testPKI(t testing.TB) (server *tls.Config, caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string) (tls.Certificate, []byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return pair, certPEM, keyPEM
	}
	srvPair, _, _ := leaf(2, "broker.test", x509.ExtKeyUsageServerAuth, []string{"broker.test"})
	_, cliCert, cliKey := leaf(3, "gateway", x509.ExtKeyUsageClientAuth, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "client.pem")
	keyFile = filepath.Join(dir, "client.key")
	for name, data := range map[string][]byte{
		caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certFile: cliCert,
		keyFile:  cliKey,
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{srvPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	return server, caFile, certFile, keyFile
}

// dialable reports whether something accepts TCP connections on addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
