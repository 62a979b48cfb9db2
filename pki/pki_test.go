package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func load(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	c, err := LoadCerts(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return c[0]
}

// The draft's pledge IDevID: MASA URL extension, serialNumber attribute.
func TestDraftPledgeIDevID(t *testing.T) {
	c := load(t, "pledge.pem")
	u, ok, err := MASAURL(c)
	if err != nil || !ok {
		t.Fatalf("MASAURL: %v %v", ok, err)
	}
	if u != "https://masa.stok.nl" {
		t.Errorf("MASAURL = %q", u)
	}
	if c.Subject.SerialNumber != "JADA123456789" {
		t.Errorf("serial = %q", c.Subject.SerialNumber)
	}
	if HasCmcRA(c) {
		t.Error("pledge has cmcRA")
	}
}

func TestDraftRegistrarCmcRA(t *testing.T) {
	if !HasCmcRA(load(t, "registrar.pem")) {
		t.Error("registrar lacks cmcRA")
	}
	if _, ok, _ := MASAURL(load(t, "registrar.pem")); ok {
		t.Error("registrar has a MASA URL")
	}
}

// SubjectKeyID method 1 reproduces the draft CAs' SKI values.
func TestSubjectKeyIDMatchesDraftCAs(t *testing.T) {
	for _, name := range []string{"masa_ca.pem", "domain_ca.pem"} {
		c := load(t, name)
		got, err := SubjectKeyID(c.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(c.SubjectKeyId) {
			t.Errorf("%s: SKI %x, cert says %x", name, got, c.SubjectKeyId)
		}
	}
}

func TestProfilesChain(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	caKey, _ := GenerateKey(nil)
	ca, err := NewCA(now, caKey, Profile{Subject: pkix.Name{CommonName: "Test Manufacturer CA"}})
	if err != nil {
		t.Fatal(err)
	}
	devKey, _ := GenerateKey(nil)
	id, err := NewIDevID(now, &Issuer{ca, caKey}, devKey.Public(), IDevIDProfile{SerialNumber: "SN-1", MASAURL: "masa.example:9443"})
	if err != nil {
		t.Fatal(err)
	}
	if id.NotAfter.Year() != 9999 {
		t.Errorf("IDevID notAfter %v", id.NotAfter)
	}
	u, ok, err := MASAURL(id)
	if err != nil || !ok || u != "https://masa.example:9443" {
		t.Errorf("MASAURL = %q %v %v", u, ok, err)
	}
	if string(id.AuthorityKeyId) != string(ca.SubjectKeyId) {
		t.Error("AKI does not name the CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := id.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("IDevID does not chain: %v", err)
	}
	regKey, _ := GenerateKey(nil)
	reg, err := NewRegistrarCert(now, &Issuer{ca, caKey}, regKey.Public(), Profile{Subject: pkix.Name{CommonName: "Registrar"}})
	if err != nil {
		t.Fatal(err)
	}
	if !HasCmcRA(reg) {
		t.Error("registrar lacks cmcRA")
	}
	if _, err := NewIDevID(now, &Issuer{ca, caKey}, devKey.Public(), IDevIDProfile{}); !errors.Is(err, ErrNoSerial) {
		t.Errorf("no serial: %v", err)
	}
}

func TestNormalizeMASAURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"masa.stok.nl", "https://masa.stok.nl", nil},
		{"masa.example:9443", "https://masa.example:9443", nil},
		{"https://masa.example/.well-known/brski", "https://masa.example", nil},
		{"http://masa.example", "", ErrMASAURL},
		{"", "", ErrMASAURL},
	} {
		got, err := NormalizeMASAURL(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("%q: %q %v", tc.in, got, err)
		}
	}
}

func TestPEMRoundTripAndWriteNew(t *testing.T) {
	k, _ := GenerateKey(nil)
	b, err := EncodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseKey(b)
	if err != nil || !k.PublicKey.Equal(k2.Public()) {
		t.Fatalf("key round trip: %v", err)
	}
	if _, err := ParseKey([]byte("garbage")); !errors.Is(err, ErrPEM) {
		t.Errorf("garbage key: %v", err)
	}
	if _, err := ParseCerts(b); !errors.Is(err, ErrPEM) {
		t.Errorf("key as cert: %v", err)
	}
	p := filepath.Join(t.TempDir(), "k.pem")
	if err := WriteNew(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, b, 0o600); !IsExist(err) {
		t.Errorf("overwrite allowed: %v", err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}
