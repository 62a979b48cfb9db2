package voucher

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

// BenchmarkParseSignedVoucherVerify is the pledge's voucher step: parse the
// draft's 724-byte voucher, verify it with the MASA key, validate it.
func BenchmarkParseSignedVoucherVerify(b *testing.B) {
	data := cbrskivec.Hex(b, "voucher.hex")
	pub := cbrskivec.Cert(b, "masa_ca.der").PublicKey
	check := PledgeCheck{SerialNumber: cbrskivec.Serial, Nonce: mustHex(b, cbrskivec.VoucherNonce)}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s, err := ParseSignedVoucher(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(pub); err != nil {
			b.Fatal(err)
		}
		if err := s.Voucher.Validate(check); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegistrarPVRToRVR is the registrar's CPU work per voucher
// request: parse and verify the PVR, validate it, build and sign the RVR.
func BenchmarkRegistrarPVRToRVR(b *testing.B) {
	pvrRaw := cbrskivec.Hex(b, "pvr.hex")
	pledge := cbrskivec.Cert(b, "pledge.der")
	registrar := cbrskivec.Cert(b, "registrar.der")
	key := cbrskivec.Key(b, "privkey_registrar.pem")
	bag := [][]byte{registrar.Raw, cbrskivec.Cert(b, "domain_ca.der").Raw, pledge.Raw}
	b.ReportAllocs()
	for b.Loop() {
		s, err := ParseSignedRequest(pvrRaw)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(pledge.PublicKey); err != nil {
			b.Fatal(err)
		}
		if err := ValidatePVR(s.Request, pledge, registrar, cbrskivec.Time); err != nil {
			b.Fatal(err)
		}
		if _, err := SignRequest(rand.Reader, key, NewRVR(pvrRaw, s.Request, pledge, cbrskivec.Time), bag); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequest decodes the draft's 292-byte RVR payload.
func BenchmarkParseRequest(b *testing.B) {
	data := cbrskivec.Hex(b, "rvr-nonsigned.hex")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseRequest(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalVoucher encodes a voucher like the draft's.
func BenchmarkMarshalVoucher(b *testing.B) {
	v, err := ParseVoucher(cbrskivec.Hex(b, "voucher-nonsigned.hex"))
	if err != nil {
		b.Fatal(err)
	}
	v.CreatedOn = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.MarshalCBOR(); err != nil {
			b.Fatal(err)
		}
	}
}
