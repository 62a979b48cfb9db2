package voucher

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

// sid is an absolute SID map key (tag 47).
func sid(n uint64) cbor.Tag { return cbor.Tag{Number: tagSID, Content: n} }

// req wraps leaves in a voucher-request container with a valid serial.
func req(leaves map[any]any) map[any]any {
	if _, ok := leaves[13]; !ok {
		leaves[13] = cbrskivec.Serial
	}
	return map[any]any{2501: leaves}
}

// vch wraps leaves in a voucher container with a valid serial.
func vch(leaves map[any]any) map[any]any {
	if _, ok := leaves[11]; !ok {
		leaves[11] = cbrskivec.Serial
	}
	return map[any]any{2451: leaves}
}

func TestDecodeStrict(t *testing.T) {
	nonce := mustHex(t, cbrskivec.PVRNonce)
	tests := []struct {
		name    string
		in      []byte
		voucher bool // parse as voucher instead of request
		want    error
	}{
		{name: "voucher given as request", in: cbrskivec.Hex(t, "voucher-nonsigned.hex"), want: ErrMalformed},
		{name: "request given as voucher", in: cbrskivec.Hex(t, "pvr-nonsigned.hex"), voucher: true, want: ErrMalformed},
		{name: "two top-level keys", in: marshal(t, map[any]any{2501: map[any]any{13: "x"}, 2502: 1}), want: ErrMalformed},
		{name: "top-level tag-47 key", in: marshal(t, map[any]any{sid(2501): map[any]any{13: "x"}}), want: ErrMalformed},
		{name: "top level not a map", in: marshal(t, []any{2501}), want: ErrMalformed},
		{name: "container not a map", in: marshal(t, map[any]any{2501: []any{1}}), want: ErrMalformed},
		{name: "empty input", in: nil, want: ErrMalformed},
		{name: "trailing byte", in: append(cbrskivec.Hex(t, "pvr-nonsigned.hex"), 0x00), want: ErrMalformed},
		{name: "oversize", in: make([]byte, cose.MaxMessageSize+1), want: cose.ErrTooLarge},
		{name: "indefinite container", in: mustHex(t, "a1 19 09c5 bf 0d 61 78 ff"), want: ErrMalformed},
		{name: "unknown delta", in: marshal(t, req(map[any]any{99: 1})), want: ErrUnknownLeaf},
		{name: "negative delta", in: marshal(t, req(map[any]any{-1: 1})), want: ErrUnknownLeaf},
		{name: "unknown name", in: marshal(t, req(map[any]any{"colour": "red"})), want: ErrUnknownLeaf},
		{name: "qualified name", in: marshal(t, req(map[any]any{"ietf-voucher-request:nonce": nonce})), want: ErrUnknownLeaf},
		{name: "voucher SID in request", in: marshal(t, req(map[any]any{sid(2452): 2})), want: ErrUnknownLeaf},
		{name: "request leaf in voucher", in: marshal(t, vch(map[any]any{"prior-signed-voucher-request": []byte{1}})), voucher: true, want: ErrUnknownLeaf},
		{name: "tag 48 key", in: marshal(t, req(map[any]any{cbor.Tag{Number: 48, Content: uint64(2508)}: nonce})), want: ErrMalformed},
		{name: "tag 47 on text", in: marshal(t, req(map[any]any{cbor.Tag{Number: 47, Content: "nonce"}: nonce})), want: ErrMalformed},
		{name: "bstr key", in: marshal(t, req(map[any]any{cbor.ByteString("n"): nonce})), want: ErrMalformed},
		{name: "delta and name for one leaf", in: marshal(t, req(map[any]any{1: 2, "assertion": 2})), want: ErrMalformed},
		{name: "delta and SID for one leaf", in: marshal(t, req(map[any]any{7: nonce, sid(2508): nonce})), want: ErrMalformed},
		{name: "same delta twice", in: mustHex(t, "a1 19 09c5 a3 01 02 01 02 0d 61 78"), want: ErrMalformed},
		{name: "nonce 7 bytes", in: marshal(t, req(map[any]any{7: make([]byte, 7)})), want: ErrMalformed},
		{name: "nonce 33 bytes", in: marshal(t, req(map[any]any{7: make([]byte, 33)})), want: ErrMalformed},
		{name: "nonce as text", in: marshal(t, req(map[any]any{7: "23BFBBC9C2BCF213"})), want: ErrMalformed},
		{name: "nonce tagged", in: marshal(t, req(map[any]any{7: cbor.Tag{Number: 24, Content: nonce}})), want: ErrMalformed},
		{name: "nonce null", in: marshal(t, req(map[any]any{7: nil})), want: ErrMalformed},
		{name: "assertion 4", in: marshal(t, req(map[any]any{1: 4})), want: ErrMalformed},
		{name: "assertion negative", in: marshal(t, req(map[any]any{1: -1})), want: ErrMalformed},
		{name: "assertion unknown name", in: marshal(t, req(map[any]any{1: "trusted"})), want: ErrMalformed},
		{name: "assertion bool", in: marshal(t, req(map[any]any{1: true})), want: ErrMalformed},
		{name: "created-on free text", in: marshal(t, req(map[any]any{2: "yesterday"})), want: ErrMalformed},
		{name: "created-on lower-case t", in: marshal(t, req(map[any]any{2: "2022-12-06t20:04:15Z"})), want: ErrMalformed},
		{name: "created-on month 13", in: marshal(t, req(map[any]any{2: "2022-13-06T20:04:15Z"})), want: ErrMalformed},
		{name: "created-on no zone", in: marshal(t, req(map[any]any{2: "2022-12-06T20:04:15"})), want: ErrMalformed},
		{name: "created-on 10 fraction digits", in: marshal(t, req(map[any]any{2: "2022-12-06T20:04:15.1234567891Z"})), want: ErrMalformed},
		{name: "created-on zero time", in: marshal(t, req(map[any]any{2: "0001-01-01T00:00:00Z"})), want: ErrMalformed},
		{name: "created-on beyond 9999 in UTC", in: marshal(t, req(map[any]any{2: "9999-12-31T23:59:59-01:00"})), want: ErrMalformed},
		{name: "created-on before 0000 in UTC", in: marshal(t, req(map[any]any{2: "0000-01-01T00:00:00+01:00"})), want: ErrMalformed},
		{name: "created-on as epoch", in: marshal(t, req(map[any]any{2: 1670357055})), want: ErrMalformed},
		{name: "created-on tag 0", in: marshal(t, req(map[any]any{2: cbor.Tag{Number: 0, Content: "2022-12-06T20:04:15Z"}})), want: ErrMalformed},
		{name: "revocation checks as int", in: marshal(t, vch(map[any]any{3: 0})), voucher: true, want: ErrMalformed},
		{name: "serial missing", in: marshal(t, map[any]any{2501: map[any]any{7: nonce}}), want: ErrMissingField},
		{name: "serial empty", in: marshal(t, req(map[any]any{13: ""})), want: ErrMissingField},
		{name: "serial as bytes", in: marshal(t, req(map[any]any{13: []byte("JADA")})), want: ErrMalformed},
		{name: "serial invalid UTF-8", in: mustHex(t, "a1 19 09c5 a1 0d 61 ff"), want: ErrMalformed},
		{name: "pubk-sha256 31 bytes", in: marshal(t, req(map[any]any{11: make([]byte, 31)})), want: ErrMalformed},
		{name: "voucher pubk-sha256 33 bytes", in: marshal(t, vch(map[any]any{10: make([]byte, 33)})), voucher: true, want: ErrMalformed},
		{name: "empty pinned-domain-cert", in: marshal(t, vch(map[any]any{8: []byte{}})), voucher: true, want: ErrMalformed},
		{name: "manufacturer-proprietary not CBOR", in: marshal(t, vch(map[any]any{14: []byte{0xff}})), voucher: true, want: ErrMalformed},
		{name: "est-domain not a URI", in: marshal(t, vch(map[any]any{13: "registrar"})), voucher: true, want: ErrMalformed},
		{name: "extensions empty", in: marshal(t, vch(map[any]any{15: []any{}})), voucher: true, want: ErrMalformed},
		{name: "extensions duplicate", in: marshal(t, vch(map[any]any{15: []any{7, 7}})), voucher: true, want: ErrMalformed},
		{name: "extensions of floats", in: marshal(t, vch(map[any]any{15: []any{1.5}})), voucher: true, want: ErrMalformed},
		{name: "extensions not a list", in: marshal(t, vch(map[any]any{15: "x"})), voucher: true, want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.voucher {
				var v *Voucher
				v, err = ParseVoucher(tc.in)
				if err == nil {
					t.Fatalf("ParseVoucher accepted %+v", v)
				}
			} else {
				var r *Request
				r, err = ParseRequest(tc.in)
				if err == nil {
					t.Fatalf("ParseRequest accepted %+v", r)
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		check func(r *Request) bool
	}{
		{name: "assertion by name", in: marshal(t, req(map[any]any{"assertion": "agent-proximity"})), check: func(r *Request) bool {
			a, ok := r.AssertionValue()
			return ok && a == AgentProximity
		}},
		{name: "date with offset", in: marshal(t, req(map[any]any{2: "2022-12-06T21:04:15.754+01:00"})), check: func(r *Request) bool {
			return r.CreatedOn.Equal(mustDate(t, "2022-12-06T20:04:15.754Z"))
		}},
		{name: "date with nanoseconds", in: marshal(t, req(map[any]any{2: "2022-12-06T20:04:15.000000001Z"})), check: func(r *Request) bool {
			return r.CreatedOn.Nanosecond() == 1
		}},
		{name: "pubk-sha256 and pubk by SID", in: marshal(t, req(map[any]any{sid(2512): make([]byte, 32), sid(2513): []byte{0x30}})), check: func(r *Request) bool {
			return len(r.ProximityRegistrarPubKSHA256) == 32 && bytes.Equal(r.ProximityRegistrarPubK, []byte{0x30})
		}},
		{name: "ignored leaves parsed", in: marshal(t, req(map[any]any{3: true, 6: "2030-01-01T00:00:00Z"})), check: func(r *Request) bool {
			return r.DomainCertRevocationChecks != nil && *r.DomainCertRevocationChecks && r.LastRenewalDate.Year() == 2030
		}},
		{name: "extensions mixed", in: marshal(t, req(map[any]any{21: []any{2600, "ietf-voucher-foo"}})), check: func(r *Request) bool {
			return reflect.DeepEqual(r.Extensions, []Extension{{SID: 2600}, {Name: "ietf-voucher-foo"}})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(r) {
				t.Fatalf("decoded %+v", r)
			}
		})
	}
}

func TestRoundTripAllLeaves(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	r := &Request{
		Assertion: Ptr(AgentProximity),
		CreatedOn: at, ExpiresOn: at.Add(time.Hour), LastRenewalDate: at.Add(2 * time.Hour),
		DomainCertRevocationChecks: Ptr(true),
		IDevIDIssuer:               []byte{4, 1, 2}, Nonce: make([]byte, 32), SerialNumber: "S",
		PinnedDomainCert: []byte{1}, PinnedDomainPubK: []byte{2}, PinnedDomainPubKSHA256: bytes.Repeat([]byte{3}, 32),
		PriorSignedVoucherRequest: []byte{4}, ProximityRegistrarCert: []byte{5},
		ProximityRegistrarPubK: []byte{6}, ProximityRegistrarPubKSHA256: bytes.Repeat([]byte{7}, 32),
		AgentProvidedProximityRegistrarCert: []byte{8}, AgentSignCert: []byte{9}, AgentSignedData: []byte{10},
		AdditionalConfigurationURL: "https://config.example/x", ESTDomain: "coaps://[2001:db8::1]",
		Extensions: []Extension{{SID: 3000}, {Name: "x"}}, ManufacturerProprietary: []byte{0xa0},
	}
	enc, err := r.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRequest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("request round trip\n got %+v\nwant %+v", back, r)
	}
	var m map[uint64]map[int64]cbor.RawMessage
	if err := cose.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	if len(m[2501]) != 22 {
		t.Fatalf("request has %d leaves, want 22", len(m[2501]))
	}
	// The request orders pubk-sha256 (11) before pubk (12); the voucher
	// the other way round (9 pubk, 10 pubk-sha256). spec/cbrski.md §3.3.
	if !bytes.Equal(m[2501][11], append([]byte{0x58, 0x20}, bytes.Repeat([]byte{7}, 32)...)) || !bytes.Equal(m[2501][12], []byte{0x41, 6}) {
		t.Fatalf("request pubk leaves: 11=%x 12=%x", m[2501][11], m[2501][12])
	}
	if string(m[2501][2]) != "\x762026-01-02T03:04:05.6Z" {
		t.Fatalf("created-on encoded as %q", m[2501][2])
	}

	v := &Voucher{
		Assertion: Ptr(Logged),
		CreatedOn: at, ExpiresOn: at.Add(time.Hour), LastRenewalDate: at.Add(2 * time.Hour),
		DomainCertRevocationChecks: Ptr(false),
		IDevIDIssuer:               []byte{4}, Nonce: make([]byte, 8), SerialNumber: "S",
		PinnedDomainCert: []byte{1}, PinnedDomainPubK: []byte{2}, PinnedDomainPubKSHA256: bytes.Repeat([]byte{3}, 32),
		AdditionalConfigurationURL: "https://a.example", ESTDomain: "https://b.example",
		ManufacturerProprietary: []byte{0x01}, Extensions: []Extension{{Name: "y"}},
	}
	venc, err := v.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	vback, err := ParseVoucher(venc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(vback, v) {
		t.Fatalf("voucher round trip\n got %+v\nwant %+v", vback, v)
	}
	m = nil
	if err := cose.Unmarshal(venc, &m); err != nil {
		t.Fatal(err)
	}
	if len(m[2451]) != 15 || !bytes.Equal(m[2451][9], []byte{0x41, 2}) || len(m[2451][10]) != 34 {
		t.Fatalf("voucher leaves: %d, 9=%x 10=%x", len(m[2451]), m[2451][9], m[2451][10])
	}
}

func TestMarshalErrors(t *testing.T) {
	ok := func() *Request { return &Request{SerialNumber: "S"} }
	tests := []struct {
		name   string
		mutate func(r *Request)
		want   error
	}{
		{name: "no serial", mutate: func(r *Request) { r.SerialNumber = "" }, want: ErrMissingField},
		{name: "short nonce", mutate: func(r *Request) { r.Nonce = []byte{1} }, want: ErrMalformed},
		{name: "empty nonce", mutate: func(r *Request) { r.Nonce = []byte{} }, want: ErrMalformed},
		{name: "bad assertion", mutate: func(r *Request) { r.Assertion = Ptr(Assertion(9)) }, want: ErrMalformed},
		{name: "year 10000", mutate: func(r *Request) { r.CreatedOn = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, want: ErrMalformed},
		{name: "extension with SID and name", mutate: func(r *Request) { r.Extensions = []Extension{{SID: 1, Name: "x"}} }, want: ErrMalformed},
		{name: "empty extension", mutate: func(r *Request) { r.Extensions = []Extension{{}} }, want: ErrMalformed},
		{name: "proprietary not CBOR", mutate: func(r *Request) { r.ManufacturerProprietary = []byte{0x1c} }, want: ErrMalformed},
		{name: "sha256 wrong size", mutate: func(r *Request) { r.PinnedDomainPubKSHA256 = []byte{1} }, want: ErrMalformed},
		{name: "URI without scheme", mutate: func(r *Request) { r.ESTDomain = "example.com" }, want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			tc.mutate(r)
			if _, err := r.MarshalCBOR(); !errors.Is(err, tc.want) {
				t.Fatalf("MarshalCBOR = %v, want %v", err, tc.want)
			}
			if _, err := SignRequest(rand.Reader, cbrskivec.Key(t, "privkey_pledge.pem"), r, nil); !errors.Is(err, tc.want) {
				t.Fatalf("SignRequest = %v, want %v", err, tc.want)
			}
		})
	}
	key := cbrskivec.Key(t, "privkey_masa_ca.pem")
	if _, err := SignVoucher(rand.Reader, key, &Voucher{SerialNumber: "S", Nonce: make([]byte, 8)}, nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("SignVoucher without created-on = %v", err)
	}
	if _, err := SignVoucher(rand.Reader, key, nil, nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("SignVoucher(nil) = %v", err)
	}
	if _, err := SignRequest(rand.Reader, key, nil, nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("SignRequest(nil) = %v", err)
	}
}

func TestSignVoucherRoundTrip(t *testing.T) {
	key := cbrskivec.Key(t, "privkey_masa_ca.pem")
	masa := cbrskivec.Cert(t, "masa_ca.der")
	v := &Voucher{
		Assertion:    Ptr(Proximity),
		CreatedOn:    time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("X", -7200)),
		Nonce:        mustHex(t, cbrskivec.PVRNonce),
		SerialNumber: cbrskivec.Serial,
		PinnedDomainCert: func() []byte {
			return cbrskivec.Cert(t, "domain_ca.der").Raw
		}(),
	}
	signed, err := SignVoucher(rand.Reader, key, v, [][]byte{masa.Raw})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSignedVoucher(signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(masa.PublicKey); err != nil {
		t.Fatal(err)
	}
	if !s.Voucher.CreatedOn.Equal(v.CreatedOn) || !strings.Contains(string(s.Sign1.Payload()), "2026-05-01T14:00:00Z") {
		t.Fatalf("created-on %v", s.Voucher.CreatedOn)
	}
	if !bytes.Equal(s.Sign1.RawProtected(), []byte{0xa1, 0x01, 0x26}) {
		t.Fatalf("protected %x", s.Sign1.RawProtected())
	}
	// The registrar strips the MASA's x5bag before forwarding.
	stripped, err := s.Sign1.StripUnprotected()
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := ParseSignedVoucher(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if err := fwd.Verify(masa.PublicKey); err != nil {
		t.Fatal(err)
	}
	if len(fwd.Sign1.X5BagRaw()) != 0 {
		t.Fatal("x5bag survived stripping")
	}
}

func TestAssertionString(t *testing.T) {
	tests := []struct {
		a    Assertion
		want string
	}{
		{Verified, "verified"}, {Logged, "logged"}, {Proximity, "proximity"},
		{AgentProximity, "agent-proximity"}, {Assertion(7), "assertion(7)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.a.String(); got != tc.want {
				t.Fatalf("String() = %q", got)
			}
		})
	}
}
