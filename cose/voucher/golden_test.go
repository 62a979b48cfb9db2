package voucher

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

func TestGoldenPVR(t *testing.T) {
	raw := cbrskivec.Hex(t, "pvr.hex")
	s, err := ParseSignedRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(cbrskivec.Cert(t, "pledge.der").PublicKey); err != nil {
		t.Fatalf("PVR signature: %v", err)
	}
	want := &Request{
		Assertion:              Ptr(Proximity),
		Nonce:                  mustHex(t, cbrskivec.PVRNonce),
		ProximityRegistrarPubK: mustHex(t, cbrskivec.RegistrarSPKI),
		SerialNumber:           cbrskivec.Serial,
	}
	if !reflect.DeepEqual(s.Request, want) {
		t.Fatalf("PVR = %+v\nwant  %+v", s.Request, want)
	}
	reencoded, err := s.Request.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reencoded, cbrskivec.Hex(t, "pvr-nonsigned.hex")) || !bytes.Equal(reencoded, s.Sign1.Payload()) {
		t.Fatalf("re-encoded PVR differs:\n%x", reencoded)
	}
	if !bytes.Equal(s.Sign1.Raw(), raw) {
		t.Fatal("Sign1 lost the raw bytes")
	}
}

func TestGoldenRVR(t *testing.T) {
	s, err := ParseSignedRequest(cbrskivec.Hex(t, "rvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(cbrskivec.Cert(t, "registrar.der").PublicKey); err != nil {
		t.Fatalf("RVR signature: %v", err)
	}
	want := &Request{
		Assertion:                 Ptr(Proximity),
		CreatedOn:                 mustDate(t, "2022-12-06T20:04:15.754Z"),
		IDevIDIssuer:              mustHex(t, cbrskivec.IDevIDIssuer),
		Nonce:                     mustHex(t, cbrskivec.PVRNonce),
		PriorSignedVoucherRequest: cbrskivec.Hex(t, "pvr.hex"),
		SerialNumber:              cbrskivec.Serial,
	}
	if !reflect.DeepEqual(s.Request, want) {
		t.Fatalf("RVR = %+v\nwant  %+v", s.Request, want)
	}
	reencoded, err := s.Request.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reencoded, cbrskivec.Hex(t, "rvr-nonsigned.hex")) || !bytes.Equal(reencoded, s.Sign1.Payload()) {
		t.Fatalf("re-encoded RVR differs:\n%x", reencoded)
	}
	prior, err := ParseSignedRequest(s.Request.PriorSignedVoucherRequest)
	if err != nil {
		t.Fatal(err)
	}
	if err := prior.Verify(cbrskivec.Cert(t, "pledge.der").PublicKey); err != nil {
		t.Fatalf("prior PVR signature: %v", err)
	}
	bag, err := s.Sign1.X5Bag()
	if err != nil || len(bag) != 2 {
		t.Fatalf("RVR x5bag: %d certificates, %v", len(bag), err)
	}
}

func TestGoldenVoucher(t *testing.T) {
	s, err := ParseSignedVoucher(cbrskivec.Hex(t, "voucher.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(cbrskivec.Cert(t, "masa_ca.der").PublicKey); err != nil {
		t.Fatalf("voucher signature: %v", err)
	}
	rvr, err := cose.Parse(cbrskivec.Hex(t, "rvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	domainCA := rvr.X5BagRaw()[1] // the 2022-12-06 domain CA
	want := &Voucher{
		Assertion:                  Ptr(Proximity),
		CreatedOn:                  mustDate(t, "2022-12-06T20:23:30.708Z"),
		DomainCertRevocationChecks: Ptr(false),
		Nonce:                      mustHex(t, cbrskivec.VoucherNonce),
		PinnedDomainCert:           domainCA,
		SerialNumber:               cbrskivec.Serial,
	}
	if !reflect.DeepEqual(s.Voucher, want) {
		t.Fatalf("voucher = %+v\nwant      %+v", s.Voucher, want)
	}
	reencoded, err := s.Voucher.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reencoded, cbrskivec.Hex(t, "voucher-nonsigned.hex")) || !bytes.Equal(reencoded, s.Sign1.Payload()) {
		t.Fatalf("re-encoded voucher differs:\n%x", reencoded)
	}
	pin, err := s.Voucher.PinnedCert()
	if err != nil {
		t.Fatal(err)
	}
	if pin.Subject.CommonName != "Custom-ER Global CA" || !pin.IsCA {
		t.Fatalf("pinned %v", pin.Subject)
	}
}

func TestNameKeyed(t *testing.T) {
	sidRVR, err := ParseRequest(cbrskivec.Hex(t, "rvr-nonsigned.hex"))
	if err != nil {
		t.Fatal(err)
	}
	sidVoucher, err := ParseVoucher(cbrskivec.Hex(t, "voucher-nonsigned.hex"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		parse   func([]byte) (any, error)
		want    any
		wantEnc string
	}{
		{name: "request by name", file: "rvr-names.hex", parse: func(b []byte) (any, error) { return ParseRequest(b) }, want: sidRVR, wantEnc: "rvr-nonsigned.hex"},
		{name: "request mixed", file: "rvr-mixed.hex", parse: func(b []byte) (any, error) { return ParseRequest(b) }, want: sidRVR, wantEnc: "rvr-nonsigned.hex"},
		{name: "voucher by name", file: "voucher-names.hex", parse: func(b []byte) (any, error) { return ParseVoucher(b) }, want: sidVoucher, wantEnc: "voucher-nonsigned.hex"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(cbrskivec.Hex(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			enc, err := cose.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, cbrskivec.Hex(t, tc.wantEnc)) {
				t.Fatalf("re-encoding is not the SID-keyed vector: %x", enc)
			}
		})
	}
}

func TestCertHelpers(t *testing.T) {
	pledge := cbrskivec.Cert(t, "pledge.der")
	if got := IDevIDIssuer(pledge); !bytes.Equal(got, mustHex(t, cbrskivec.IDevIDIssuer)) {
		t.Errorf("IDevIDIssuer(pledge) = %X", got)
	}
	serial, err := SerialNumber(pledge)
	if err != nil || serial != cbrskivec.Serial {
		t.Errorf("SerialNumber(pledge) = %q, %v", serial, err)
	}
	if _, err := SerialNumber(cbrskivec.Cert(t, "registrar.der")); !errors.Is(err, ErrNoSerialNumber) {
		t.Errorf("SerialNumber(registrar) = %v, want ErrNoSerialNumber", err)
	}
	if _, err := SerialNumber(nil); !errors.Is(err, ErrNoSerialNumber) {
		t.Errorf("SerialNumber(nil) = %v", err)
	}
	if IDevIDIssuer(nil) != nil {
		t.Error("IDevIDIssuer(nil) != nil")
	}

	// A certificate without AKI (Go issues self-signed certificates without
	// one): the fallback is RFC 5280 §4.2.1.2 method 1, SHA-1 of the
	// subjectPublicKey bits, here the uncompressed P-256 point.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "no-aki", SerialNumber: "A"},
		NotBefore:             cbrskivec.Time,
		NotAfter:              cbrskivec.Time.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AuthorityKeyId) != 0 {
		t.Fatalf("test certificate has AKI %x", c.AuthorityKeyId)
	}
	point, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	keyID := sha1.Sum(point)
	want := append(mustHex(t, "04 18 30 16 80 14"), keyID[:]...)
	if got := IDevIDIssuer(c); !bytes.Equal(got, want) {
		t.Fatalf("IDevIDIssuer without AKI = %X, want %X", got, want)
	}
}

func TestNewRVRReproducesVector(t *testing.T) {
	pvrRaw := cbrskivec.Hex(t, "pvr.hex")
	pvr, err := ParseSignedRequest(pvrRaw)
	if err != nil {
		t.Fatal(err)
	}
	pledge := cbrskivec.Cert(t, "pledge.der")
	// The vector's created-on, with sub-millisecond noise that NewRVR drops.
	now := mustDate(t, "2022-12-06T20:04:15.754Z").Add(123 * time.Microsecond).In(time.FixedZone("CET", 3600))
	rvr := NewRVR(pvrRaw, pvr.Request, pledge, now)
	got, err := rvr.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if want := cbrskivec.Hex(t, "rvr-nonsigned.hex"); !bytes.Equal(got, want) {
		t.Fatalf("NewRVR payload\n%X\nwant\n%X", got, want)
	}
	if rvr.ProximityRegistrarCert != nil {
		t.Error("RVR carries proximity-registrar-cert")
	}

	key := cbrskivec.Key(t, "privkey_registrar.pem")
	rv, err := cose.Parse(cbrskivec.Hex(t, "rvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignRequest(rand.Reader, key, rvr, append(rv.X5BagRaw(), pledge.Raw))
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSignedRequest(signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRVR(back.Request, pvr.Request, pledge, now); err != nil {
		t.Fatalf("ValidateRVR(NewRVR) = %v", err)
	}
}
