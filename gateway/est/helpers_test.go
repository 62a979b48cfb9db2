package est

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/pki"
)

// testNow is the fixed clock of the handler tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// hexFile reads a testdata/*.hex file, ignoring whitespace.
func hexFile(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

// testPKI is a root CA, an issuing CA below it (the EST CA), a manufacturer
// CA and a pledge with its IDevID.
type testPKI struct {
	root, issuing *x509.Certificate
	rootKey       crypto.Signer
	issuingKey    crypto.Signer
	idevid        *x509.Certificate
	idevidKey     crypto.Signer
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

// sharedPKI builds the test PKI once per test binary (key generation
// dominates otherwise).
func sharedPKI(tb testing.TB) *testPKI {
	tb.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = newTestPKI(testNow, 20*365*24*time.Hour) })
	if pkiErr != nil {
		tb.Fatal(pkiErr)
	}
	return pkiVal
}

func newTestPKI(now time.Time, caValidity time.Duration) (*testPKI, error) {
	p := &testPKI{}
	rootKey, err := pki.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	p.rootKey = rootKey
	p.root, err = pki.NewCA(now.Add(-time.Hour), rootKey, pki.Profile{
		Subject: pkix.Name{CommonName: "Test Domain Root CA", Organization: []string{"Tumbler test"}},
	})
	if err != nil {
		return nil, err
	}
	issKey, err := pki.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	p.issuingKey = issKey
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "Test Domain Issuing CA", Organization: []string{"Tumbler test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root, issKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	if p.issuing, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	mfgKey, err := pki.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	mfg, err := pki.NewCA(now.Add(-time.Hour), mfgKey, pki.Profile{Subject: pkix.Name{CommonName: "Test Manufacturer CA"}})
	if err != nil {
		return nil, err
	}
	devKey, err := pki.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	p.idevidKey = devKey
	p.idevid, err = pki.NewIDevID(now.Add(-time.Hour), &pki.Issuer{Cert: mfg, Key: mfgKey}, devKey.Public(), pki.IDevIDProfile{
		Profile:      pki.Profile{Subject: pkix.Name{Organization: []string{"Acme"}, CommonName: "Acme sensor"}},
		SerialNumber: "ACME-0001",
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *testPKI) ca() CA {
	return CA{Cert: p.issuing, Key: p.issuingKey, Chain: []*x509.Certificate{p.issuing, p.root}}
}

// fakeAuthorizer returns a fixed identity or error and counts calls.
type fakeAuthorizer struct {
	mu    sync.Mutex
	id    Identity
	err   error
	calls []Op
}

func (a *fakeAuthorizer) Authorize(_ context.Context, _ coap.Peer, op Op) (Identity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, op)
	return a.id, a.err
}

// fakeRecorder records what it is given, or fails.
type fakeRecorder struct {
	mu    sync.Mutex
	err   error
	certs []*x509.Certificate
	ids   []Identity
	ops   []Op
}

func (r *fakeRecorder) RecordIssued(_ context.Context, id Identity, cert *x509.Certificate, op Op) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	r.certs = append(r.certs, cert)
	r.ops = append(r.ops, op)
	return r.err
}

func (r *fakeRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.certs)
}

func identityFor(idevid *x509.Certificate, serial string) Identity {
	return Identity{DeviceID: sha256.Sum256(idevid.Raw), Serial: serial}
}

// newTestServer returns a server over the shared PKI with a fixed clock.
func newTestServer(tb testing.TB, authz Authorizer, rec Recorder, opts ...Option) *Server {
	tb.Helper()
	p := sharedPKI(tb)
	all := append([]Option{WithClock(fixedClock), WithAuthorizer(authz), WithRecorder(rec)}, opts...)
	s, err := NewServer(p.ca(), all...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newP256(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustCSR(tb testing.TB, key crypto.Signer, subject pkix.Name) []byte {
	tb.Helper()
	der, err := NewCSR(rand.Reader, key, subject)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func postReq(path string, chain []*x509.Certificate, cf, accept int, payload []byte) *coap.Request {
	return &coap.Request{
		Method:        codes.POST,
		Path:          path,
		ContentFormat: cf,
		Accept:        accept,
		Payload:       payload,
		Peer:          coap.Peer{Chain: chain, Session: "test"},
	}
}

func getReq(path string, chain []*x509.Certificate, accept int) *coap.Request {
	return &coap.Request{
		Method:        codes.GET,
		Path:          path,
		ContentFormat: coap.FormatNone,
		Accept:        accept,
		Peer:          coap.Peer{Chain: chain, Session: "test"},
	}
}

// serve routes r through a mux holding s's resources.
func serve(tb testing.TB, s *Server, r *coap.Request) (*coap.Response, error) {
	tb.Helper()
	m := coap.NewMux()
	s.Register(m)
	return m.ServeCoAP(context.Background(), r)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
