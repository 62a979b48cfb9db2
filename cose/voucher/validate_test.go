package voucher

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

// vectorPVR returns a fresh copy of the draft's PVR.
func vectorPVR(t *testing.T) *Request {
	t.Helper()
	s, err := ParseSignedRequest(cbrskivec.Hex(t, "pvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	return s.Request
}

func TestValidatePVR(t *testing.T) {
	pledge := cbrskivec.Cert(t, "pledge.der")
	// registrar.der is the 2022-12-09 certificate; the PVR pins the
	// registrar's public key, which is the same in both sets (§9 pitfall 10).
	registrar := cbrskivec.Cert(t, "registrar.der")
	rvr, err := cose.Parse(cbrskivec.Hex(t, "rvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	bag, err := rvr.X5Bag()
	if err != nil {
		t.Fatal(err)
	}
	registrar1206 := bag[0]
	sum := sha256.Sum256(registrar.RawSubjectPublicKeyInfo)
	now := cbrskivec.Time

	tests := []struct {
		name      string
		mutate    func(r *Request)
		idevid    *x509.Certificate
		registrar *x509.Certificate
		noClock   bool
		want      error
	}{
		{name: "vector passes", mutate: func(*Request) {}},
		{name: "vector passes with the 2022-12-06 registrar", mutate: func(*Request) {}, registrar: registrar1206},
		{name: "serial differs", mutate: func(r *Request) { r.SerialNumber = "JADA000000000" }, want: ErrSerialMismatch},
		{name: "IDevID without serial", mutate: func(*Request) {}, idevid: registrar, want: ErrNoSerialNumber},
		{name: "nonce missing", mutate: func(r *Request) { r.Nonce = nil }, want: ErrNonceMissing},
		{name: "assertion missing", mutate: func(r *Request) { r.Assertion = nil }, want: ErrAssertion},
		{name: "assertion logged", mutate: func(r *Request) { r.Assertion = Ptr(Logged) }, want: ErrAssertion},
		{name: "no proximity registrar", mutate: func(r *Request) { r.ProximityRegistrarPubK = nil }, want: ErrProximityMissing},
		{name: "pubk of another key", mutate: func(r *Request) { r.ProximityRegistrarPubK = pledge.RawSubjectPublicKeyInfo }, want: ErrProximityMismatch},
		{name: "pubk-sha256 matches", mutate: func(r *Request) { r.ProximityRegistrarPubK, r.ProximityRegistrarPubKSHA256 = nil, sum[:] }},
		{name: "pubk-sha256 differs", mutate: func(r *Request) { r.ProximityRegistrarPubKSHA256 = make([]byte, 32) }, want: ErrProximityMismatch},
		{name: "cert matches", mutate: func(r *Request) { r.ProximityRegistrarCert = registrar.Raw }},
		{name: "cert of the other certificate set", mutate: func(r *Request) { r.ProximityRegistrarCert = registrar1206.Raw }, want: ErrProximityMismatch},
		{name: "created-on within skew", mutate: func(r *Request) { r.CreatedOn = now.Add(MaxClockSkew) }},
		{name: "created-on in the past", mutate: func(r *Request) { r.CreatedOn = now.Add(-24 * time.Hour) }},
		{name: "created-on in the future", mutate: func(r *Request) { r.CreatedOn = now.Add(MaxClockSkew + time.Second) }, want: ErrNotYetValid},
		{name: "expires-on passed", mutate: func(r *Request) { r.ExpiresOn = now }, want: ErrExpired},
		{name: "expires-on ahead", mutate: func(r *Request) { r.ExpiresOn = now.Add(time.Second) }},
		{name: "no clock", mutate: func(*Request) {}, noClock: true, want: ErrMissingField},
		{name: "idevid-issuer and pins ignored", mutate: func(r *Request) {
			r.IDevIDIssuer, r.PinnedDomainCert = []byte{4, 0}, []byte{1}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := vectorPVR(t)
			tc.mutate(r)
			idevid, reg, at := pledge, registrar, now
			if tc.idevid != nil {
				idevid = tc.idevid
			}
			if tc.registrar != nil {
				reg = tc.registrar
			}
			if tc.noClock {
				at = time.Time{}
			}
			err := ValidatePVR(r, idevid, reg, at)
			if tc.want == nil && err != nil {
				t.Fatalf("ValidatePVR = %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("ValidatePVR = %v, want %v", err, tc.want)
			}
		})
	}
	if err := ValidatePVR(nil, pledge, registrar, now); !errors.Is(err, ErrMissingField) {
		t.Fatalf("nil PVR: %v", err)
	}
}

func TestValidateRVR(t *testing.T) {
	pledge := cbrskivec.Cert(t, "pledge.der")
	now := mustDate(t, "2022-12-06T20:05:00Z")
	tests := []struct {
		name   string
		mutate func(rvr, pvr *Request)
		idevid *x509.Certificate
		want   error
	}{
		{name: "vector passes", mutate: func(_, _ *Request) {}},
		{name: "prior missing", mutate: func(rvr, _ *Request) { rvr.PriorSignedVoucherRequest = nil }, want: ErrMissingField},
		{name: "RVR serial differs", mutate: func(rvr, _ *Request) { rvr.SerialNumber = "X" }, want: ErrSerialMismatch},
		{name: "PVR serial differs", mutate: func(_, pvr *Request) { pvr.SerialNumber = "X" }, want: ErrSerialMismatch},
		{name: "IDevID without serial", mutate: func(_, _ *Request) {}, idevid: cbrskivec.Cert(t, "registrar.der"), want: ErrNoSerialNumber},
		{name: "PVR nonce missing", mutate: func(_, pvr *Request) { pvr.Nonce = nil }, want: ErrNonceMissing},
		{name: "RVR nonce missing", mutate: func(rvr, _ *Request) { rvr.Nonce = nil }, want: ErrNonceMissing},
		{name: "RVR nonce differs", mutate: func(rvr, _ *Request) { rvr.Nonce = mustHex(t, cbrskivec.VoucherNonce) }, want: ErrNonceMismatch},
		{name: "idevid-issuer missing", mutate: func(rvr, _ *Request) { rvr.IDevIDIssuer = nil }, want: ErrMissingField},
		{name: "idevid-issuer differs", mutate: func(rvr, _ *Request) {
			rvr.IDevIDIssuer = mustHex(t, "0418301680140000000000000000000000000000000000000000")
		}, want: ErrIssuerMismatch},
		{name: "PVR not proximity", mutate: func(_, pvr *Request) { pvr.Assertion = Ptr(Verified) }, want: ErrAssertion},
		{name: "RVR assertion ignored", mutate: func(rvr, _ *Request) { rvr.Assertion = nil }},
		{name: "PVR names no registrar", mutate: func(_, pvr *Request) { pvr.ProximityRegistrarPubK = nil }, want: ErrProximityMissing},
		{name: "RVR created in the future", mutate: func(rvr, _ *Request) { rvr.CreatedOn = now.Add(time.Hour) }, want: ErrNotYetValid},
		{name: "RVR expired", mutate: func(rvr, _ *Request) { rvr.ExpiresOn = now.Add(-time.Second) }, want: ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSignedRequest(cbrskivec.Hex(t, "rvr.hex"))
			if err != nil {
				t.Fatal(err)
			}
			prior, err := ParseSignedRequest(s.Request.PriorSignedVoucherRequest)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(s.Request, prior.Request)
			idevid := pledge
			if tc.idevid != nil {
				idevid = tc.idevid
			}
			err = ValidateRVR(s.Request, prior.Request, idevid, now)
			if tc.want == nil && err != nil {
				t.Fatalf("ValidateRVR = %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("ValidateRVR = %v, want %v", err, tc.want)
			}
		})
	}
	if err := ValidateRVR(nil, nil, pledge, now); !errors.Is(err, ErrMissingField) {
		t.Fatalf("nil RVR: %v", err)
	}
}

func TestVoucherValidate(t *testing.T) {
	pledge := cbrskivec.Cert(t, "pledge.der")
	base := PledgeCheck{
		SerialNumber: cbrskivec.Serial,
		Nonce:        mustHex(t, cbrskivec.VoucherNonce), // the voucher's own nonce
		IDevIDIssuer: IDevIDIssuer(pledge),
		Now:          cbrskivec.Time,
	}
	tests := []struct {
		name   string
		mutate func(v *Voucher, o *PledgeCheck)
		want   error
	}{
		{name: "vector passes with its own nonce", mutate: func(*Voucher, *PledgeCheck) {}},
		{name: "vector nonce differs from the vector PVR's", mutate: func(_ *Voucher, o *PledgeCheck) { o.Nonce = mustHex(t, cbrskivec.PVRNonce) }, want: ErrNonceMismatch},
		{name: "serial differs", mutate: func(v *Voucher, _ *PledgeCheck) { v.SerialNumber = "X" }, want: ErrSerialMismatch},
		{name: "pledge serial unknown", mutate: func(_ *Voucher, o *PledgeCheck) { o.SerialNumber = "" }, want: ErrMissingField},
		{name: "assertion missing", mutate: func(v *Voucher, _ *PledgeCheck) { v.Assertion = nil }, want: ErrAssertion},
		{name: "assertion verified refused by default", mutate: func(v *Voucher, _ *PledgeCheck) { v.Assertion = Ptr(Verified) }, want: ErrAssertion},
		{name: "assertion verified allowed by policy", mutate: func(v *Voucher, o *PledgeCheck) {
			v.Assertion, o.Assertions = Ptr(Verified), []Assertion{Verified, Proximity}
		}},
		{name: "nonce missing", mutate: func(v *Voucher, _ *PledgeCheck) { v.Nonce = nil }, want: ErrNonceMissing},
		{name: "idevid-issuer matches", mutate: func(v *Voucher, _ *PledgeCheck) { v.IDevIDIssuer = mustHex(t, cbrskivec.IDevIDIssuer) }},
		{name: "idevid-issuer differs", mutate: func(v *Voucher, _ *PledgeCheck) { v.IDevIDIssuer = []byte{4, 1, 0} }, want: ErrIssuerMismatch},
		{name: "expired", mutate: func(v *Voucher, _ *PledgeCheck) { v.ExpiresOn = cbrskivec.Time }, want: ErrExpired},
		{name: "expiry unchecked without clock", mutate: func(v *Voucher, o *PledgeCheck) { v.ExpiresOn, o.Now = cbrskivec.Time.Add(-time.Hour), time.Time{} }},
		{name: "nonceless voucher", mutate: func(v *Voucher, o *PledgeCheck) {
			v.Nonce, o.Nonce, v.ExpiresOn = nil, nil, cbrskivec.Time.Add(time.Hour)
		}},
		{name: "nonceless voucher expired", mutate: func(v *Voucher, o *PledgeCheck) {
			v.Nonce, o.Nonce, v.ExpiresOn = nil, nil, cbrskivec.Time.Add(-time.Hour)
		}, want: ErrExpired},
		{name: "nonceless voucher without expires-on", mutate: func(v *Voucher, o *PledgeCheck) { v.Nonce, o.Nonce = nil, nil }, want: ErrMissingField},
		{name: "nonceless voucher without clock", mutate: func(v *Voucher, o *PledgeCheck) {
			v.Nonce, o.Nonce, v.ExpiresOn, o.Now = nil, nil, cbrskivec.Time, time.Time{}
		}, want: ErrMissingField},
		{name: "nonce in answer to nonceless request", mutate: func(_ *Voucher, o *PledgeCheck) { o.Nonce = nil }, want: ErrNonceMismatch},
		{name: "last-renewal-date without expires-on", mutate: func(v *Voucher, _ *PledgeCheck) { v.LastRenewalDate = cbrskivec.Time }, want: ErrMissingField},
		{name: "no pin", mutate: func(v *Voucher, _ *PledgeCheck) { v.PinnedDomainCert = nil }, want: ErrPinMissing},
		{name: "pubk pin only", mutate: func(v *Voucher, _ *PledgeCheck) { v.PinnedDomainCert, v.PinnedDomainPubK = nil, []byte{1} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSignedVoucher(cbrskivec.Hex(t, "voucher.hex"))
			if err != nil {
				t.Fatal(err)
			}
			o := base
			tc.mutate(s.Voucher, &o)
			err = s.Voucher.Validate(o)
			if tc.want == nil && err != nil {
				t.Fatalf("Validate = %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyRegistrarPinned(t *testing.T) {
	rvr, err := cose.Parse(cbrskivec.Hex(t, "rvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	bag, err := rvr.X5Bag()
	if err != nil {
		t.Fatal(err)
	}
	registrar1206, domainCA1206 := bag[0], bag[1]
	registrar1209 := cbrskivec.Cert(t, "registrar.der")
	pledge := cbrskivec.Cert(t, "pledge.der")
	spkiSum := sha256.Sum256(registrar1206.RawSubjectPublicKeyInfo)

	vectorVoucher := func(t *testing.T) *Voucher {
		s, err := ParseSignedVoucher(cbrskivec.Hex(t, "voucher.hex"))
		if err != nil {
			t.Fatal(err)
		}
		return s.Voucher
	}
	tests := []struct {
		name   string
		mutate func(v *Voucher)
		chain  []*x509.Certificate
		now    time.Time
		want   error
	}{
		{name: "registrar issued by pinned domain CA", mutate: func(*Voucher) {}, chain: []*x509.Certificate{registrar1206}, now: cbrskivec.Time},
		{name: "regenerated registrar, same CA key", mutate: func(*Voucher) {}, chain: []*x509.Certificate{registrar1209}, now: cbrskivec.Time},
		{name: "chain with the CA itself", mutate: func(*Voucher) {}, chain: []*x509.Certificate{registrar1206, domainCA1206}, now: cbrskivec.Time},
		{name: "no clock: checked at notBefore", mutate: func(*Voucher) {}, chain: []*x509.Certificate{registrar1206}},
		{name: "registrar expired", mutate: func(*Voucher) {}, chain: []*x509.Certificate{registrar1206}, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), want: ErrPinMismatch},
		{name: "pledge cert is not from the domain", mutate: func(*Voucher) {}, chain: []*x509.Certificate{pledge}, now: cbrskivec.Time, want: ErrPinMismatch},
		{name: "pin is the registrar itself", mutate: func(v *Voucher) { v.PinnedDomainCert = registrar1206.Raw }, chain: []*x509.Certificate{registrar1206}, now: cbrskivec.Time},
		{name: "pubk pin", mutate: func(v *Voucher) { v.PinnedDomainCert, v.PinnedDomainPubK = nil, registrar1209.RawSubjectPublicKeyInfo }, chain: []*x509.Certificate{registrar1206}},
		{name: "pubk-sha256 pin", mutate: func(v *Voucher) { v.PinnedDomainCert, v.PinnedDomainPubKSHA256 = nil, spkiSum[:] }, chain: []*x509.Certificate{registrar1206}},
		{name: "pubk pin of the CA", mutate: func(v *Voucher) { v.PinnedDomainCert, v.PinnedDomainPubK = nil, domainCA1206.RawSubjectPublicKeyInfo }, chain: []*x509.Certificate{registrar1206}, want: ErrPinMismatch},
		{name: "wrong pubk, right cert", mutate: func(v *Voucher) { v.PinnedDomainPubK = pledge.RawSubjectPublicKeyInfo }, chain: []*x509.Certificate{registrar1206}, now: cbrskivec.Time},
		{name: "no pin", mutate: func(v *Voucher) { v.PinnedDomainCert = nil }, chain: []*x509.Certificate{registrar1206}, want: ErrPinMissing},
		{name: "garbage pin", mutate: func(v *Voucher) { v.PinnedDomainCert = []byte{0x30, 0x00} }, chain: []*x509.Certificate{registrar1206}, want: ErrMalformed},
		{name: "empty chain", mutate: func(*Voucher) {}, want: ErrMissingField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := vectorVoucher(t)
			tc.mutate(v)
			err := VerifyRegistrarPinned(v, tc.chain, tc.now)
			if tc.want == nil && err != nil {
				t.Fatalf("VerifyRegistrarPinned = %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyRegistrarPinned = %v, want %v", err, tc.want)
			}
		})
	}
	v := vectorVoucher(t)
	v.PinnedDomainCert = nil
	if _, err := v.PinnedCert(); !errors.Is(err, ErrPinMissing) {
		t.Fatalf("PinnedCert = %v", err)
	}
	if !bytes.Equal(domainCA1206.Raw, vectorVoucher(t).PinnedDomainCert) {
		t.Fatal("voucher does not pin the 2022-12-06 domain CA")
	}
}

func TestCheckProximity(t *testing.T) {
	if err := CheckProximity(nil, nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("CheckProximity(nil) = %v", err)
	}
	if err := CheckProximity(vectorPVR(t), cbrskivec.Cert(t, "registrar.der")); err != nil {
		t.Fatal(err)
	}
	if err := CheckProximity(vectorPVR(t), cbrskivec.Cert(t, "domain_ca.der")); !errors.Is(err, ErrProximityMismatch) {
		t.Fatalf("CheckProximity(domain CA) = %v", err)
	}
}
