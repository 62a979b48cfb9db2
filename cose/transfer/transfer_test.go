package transfer

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/pki"
)

func registrar(t *testing.T) ([]*x509.Certificate, *pki.Issuer, any) {
	t.Helper()
	now := time.Now()
	caKey, _ := pki.GenerateKey(nil)
	ca, _ := pki.NewCA(now, caKey, pki.Profile{Subject: pkix.Name{CommonName: "Domain CA"}})
	key, _ := pki.GenerateKey(nil)
	reg, err := pki.NewRegistrarCert(now, &pki.Issuer{Cert: ca, Key: caKey}, key.Public(), pki.Profile{Subject: pkix.Name{CommonName: "Registrar"}})
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{reg, ca}, &pki.Issuer{Cert: reg, Key: key}, key
}

func TestAuthorizationRoundTrip(t *testing.T) {
	chain, reg, _ := registrar(t)
	now := time.Now().Truncate(time.Second).UTC()
	a := &Authorization{Device: [32]byte{1}, Serial: "SN-1", NewOwner: [32]byte{2}, NotAfter: now.Add(time.Hour), IssuedAt: now}
	b, err := SignAuthorization(rand.Reader, reg.Key, chain, a)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseAuthorization(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Serial != "SN-1" || s.Device != a.Device || s.NewOwner != a.NewOwner || !s.NotAfter.Equal(a.NotAfter) || len(s.Nonce) != 16 {
		t.Fatalf("got %+v", s.Authorization)
	}
	signer, bag, err := Signer(s.Msg)
	if err != nil || !signer.Equal(chain[0]) || len(bag) != 2 {
		t.Fatalf("signer %v %v", signer, err)
	}
	// Another authorisation for the same device never coincides.
	b2, _ := SignAuthorization(rand.Reader, reg.Key, chain, &Authorization{Device: a.Device, Serial: a.Serial, NewOwner: a.NewOwner, NotAfter: a.NotAfter, IssuedAt: a.IssuedAt})
	if s2, _ := ParseAuthorization(b2); s2.Hash == s.Hash {
		t.Error("two authorisations with the same hash")
	}
	// A flipped payload byte breaks the signature.
	bad := append([]byte(nil), b...)
	bad[20] ^= 1
	if s, err := ParseAuthorization(bad); err == nil {
		if _, _, err := Signer(s.Msg); !errors.Is(err, ErrSigner) {
			t.Errorf("tampered authorisation: %v", err)
		}
	}
	for _, junk := range [][]byte{nil, {0xd2}, []byte("not cose")} {
		if _, err := ParseAuthorization(junk); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", junk, err)
		}
	}
}

func TestOrderClaimObjection(t *testing.T) {
	authKey, _ := pki.GenerateKey(nil)
	chain, reg, _ := registrar(t)
	now := time.Now()
	owner := SPKIHash(chain[1])
	ob, err := SignOrder(rand.Reader, authKey, &Order{Serial: "SN-9", NewOwner: owner, IssuedAt: now, Reason: "foreclosure"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOrder(ob)
	if err != nil || o.Reason != "foreclosure" || o.NewOwner != owner {
		t.Fatalf("order %+v %v", o, err)
	}
	if err := o.Msg.Verify(authKey.Public()); err != nil {
		t.Fatal(err)
	}
	if kid, _ := cose.KeyID(authKey.Public()); string(o.Msg.KID()) != string(kid) {
		t.Error("order kid is not the authority's key id")
	}
	secret := []byte("0123456789abcdef")
	proof := Proof(secret, "SN-9", owner)
	cb, err := SignClaim(rand.Reader, reg.Key, chain, &Claim{Serial: "SN-9", Order: ob, Proof: proof})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseClaim(cb)
	if err != nil || string(c.Proof) != string(proof) {
		t.Fatalf("claim %+v %v", c, err)
	}
	if string(Proof(secret, "SN-9", [32]byte{})) == string(proof) || string(Proof([]byte("other-secret-0000"), "SN-9", owner)) == string(proof) {
		t.Error("proof does not bind the domain and the secret")
	}
	if _, err := SignClaim(rand.Reader, reg.Key, chain, &Claim{Serial: "SN-9", Order: ob}); !errors.Is(err, ErrMalformed) {
		t.Errorf("claim without proof: %v", err)
	}
	xb, err := SignObjection(rand.Reader, reg.Key, chain, "SN-9", now)
	if err != nil {
		t.Fatal(err)
	}
	if x, m, err := ParseObjection(xb); err != nil || x.Serial != "SN-9" || m == nil {
		t.Fatalf("objection %+v %v", x, err)
	}
	qb, err := SignClaimsQuery(rand.Reader, reg.Key, chain, now)
	if err != nil {
		t.Fatal(err)
	}
	if q, m, err := ParseClaimsQuery(qb); err != nil || q.IssuedAt != uint64(now.Unix()) || m == nil {
		t.Fatalf("claims query %+v %v", q, err)
	}
	// Neither registrar-signed document passes for the other.
	if _, _, err := ParseClaimsQuery(xb); !errors.Is(err, ErrMalformed) {
		t.Errorf("objection parsed as a claims query: %v", err)
	}
	if _, _, err := ParseObjection(qb); !errors.Is(err, ErrMalformed) {
		t.Errorf("claims query parsed as an objection: %v", err)
	}
}

func TestLabel(t *testing.T) {
	secret := []byte("0123456789abcdef")
	s := FormatLabel("SN:with:colons", secret)
	serial, got, err := ParseLabel(s)
	if err != nil || serial != "SN:with:colons" || string(got) != string(secret) {
		t.Fatalf("%q -> %q %x %v", s, serial, got, err)
	}
	for _, bad := range []string{"", "TB1:", "TB1:SN", "TB2:SN:00112233445566778899aabbccddeeff", "TB1:SN:zz", "TB1:SN:0011"} {
		if _, _, err := ParseLabel(bad); !errors.Is(err, ErrLabel) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
