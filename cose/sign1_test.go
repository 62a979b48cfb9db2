package cose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"

	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

func TestVectorsParseVerify(t *testing.T) {
	wantPayloadPrefix := map[string][]byte{
		"pvr":     {0xa1, 0x19, 0x09, 0xc5}, // {2501: ...}
		"rvr":     {0xa1, 0x19, 0x09, 0xc5}, // {2501: ...}
		"voucher": {0xa1, 0x19, 0x09, 0x93}, // {2451: ...}
	}
	wantPayloadLen := map[string]int{"pvr": 126, "rvr": 292, "voucher": 648}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			data := cbrskivec.Hex(t, v.file)
			m, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := m.Verify(cbrskivec.Cert(t, v.signer).PublicKey); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := m.RawProtected(); !bytes.Equal(got, []byte{0xa1, 0x01, 0x26}) {
				t.Errorf("protected = %x, want a10126", got)
			}
			if m.Algorithm() != AlgES256 {
				t.Errorf("alg = %d", m.Algorithm())
			}
			if !bytes.HasPrefix(m.Payload(), wantPayloadPrefix[v.name]) || len(m.Payload()) != wantPayloadLen[v.name] {
				t.Errorf("payload %x... (%d bytes)", m.Payload()[:4], len(m.Payload()))
			}
			if len(m.Signature()) != 64 {
				t.Errorf("signature of %d bytes", len(m.Signature()))
			}
			if !bytes.Equal(m.Raw(), data) {
				t.Error("Raw differs from input")
			}
			again, err := m.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Error("re-encoding differs from input")
			}
			var viaCBOR Sign1
			if err := Unmarshal(data, &viaCBOR); err != nil {
				t.Fatalf("Unmarshal into Sign1: %v", err)
			}
			if !bytes.Equal(viaCBOR.Raw(), data) {
				t.Error("UnmarshalCBOR lost bytes")
			}
		})
	}
}

func TestVectorsWrongKey(t *testing.T) {
	tests := []struct {
		name, file, key string
	}{
		{name: "pvr with registrar key", file: "pvr.hex", key: "registrar.der"},
		{name: "rvr with pledge key", file: "rvr.hex", key: "pledge.der"},
		{name: "voucher with domain CA key", file: "voucher.hex", key: "domain_ca.der"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(cbrskivec.Hex(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Verify(cbrskivec.Cert(t, tc.key).PublicKey); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

// TestVectorsFlippedByte flips each bit 0 of each byte of each vector: the
// result must fail to parse or verify, unless the flip is inside the
// unprotected header, which the signature does not cover; then the signed
// parts must be unchanged.
func TestVectorsFlippedByte(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			data := cbrskivec.Hex(t, v.file)
			orig, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			pub := cbrskivec.Cert(t, v.signer).PublicKey
			unprotStart := 2 + len(appendBstr(nil, orig.RawProtected()))
			unprotEnd := unprotStart + len(orig.unprotected)
			for i := range data {
				mut := bytes.Clone(data)
				mut[i] ^= 0x01
				m, err := Parse(mut)
				if err == nil {
					err = m.Verify(pub)
				}
				switch {
				case err == nil:
					if i < unprotStart || i >= unprotEnd {
						t.Fatalf("flip at %d outside the unprotected header verified", i)
					}
					if !bytes.Equal(m.RawProtected(), orig.RawProtected()) ||
						!bytes.Equal(m.Payload(), orig.Payload()) ||
						!bytes.Equal(m.Signature(), orig.Signature()) {
						t.Fatalf("flip at %d changed signed content yet verified", i)
					}
				case errors.Is(err, ErrMalformed), errors.Is(err, ErrBadSignature), errors.Is(err, ErrAlgorithm):
				default:
					t.Fatalf("flip at %d: unexpected error %v", i, err)
				}
			}
		})
	}
}

func TestParseStrict(t *testing.T) {
	pvr := cbrskivec.Hex(t, "pvr.hex")
	p, err := Parse(pvr)
	if err != nil {
		t.Fatal(err)
	}
	payload, sig := p.Payload(), p.Signature()
	es256 := []byte{0xa1, 0x01, 0x26}
	nested := append(bytes.Repeat([]byte{0x81}, MaxNestedLevels+2), 0x00)

	tests := []struct {
		name    string
		in      []byte
		want    error
		wantAs  any // optional cbor error type the cause must be
		wantNot error
	}{
		{name: "empty", in: nil, want: ErrMalformed},
		{name: "oversize garbage is not decoded", in: bytes.Repeat([]byte{0xff}, MaxMessageSize+1), want: ErrTooLarge, wantNot: ErrMalformed},
		{name: "untagged", in: pvr[1:], want: ErrMalformed},
		{name: "tag 17 (COSE_Mac0)", in: append([]byte{0xd1}, pvr[1:]...), want: ErrMalformed},
		{name: "tag 18 in long form", in: append([]byte{0xd8, 0x12}, pvr[1:]...), want: ErrMalformed},
		{name: "trailing byte", in: append(bytes.Clone(pvr), 0x00), want: ErrMalformed, wantAs: new(*cbor.ExtraneousDataError)},
		{name: "deeply nested", in: nested, want: ErrMalformed, wantAs: new(*cbor.MaxNestedLevelError)},
		{name: "deeply nested unprotected value", in: envelope(es256, append([]byte{0xa1, 0x18, 0x63}, nested...), payload, sig), want: ErrMalformed, wantAs: new(*cbor.MaxNestedLevelError)},
		{name: "huge declared array", in: envelope(es256, []byte{0xa1, 0x18, 0x63, 0x99, 0x10, 0x00}, payload, sig), want: ErrMalformed},
		{name: "indefinite array", in: append(append([]byte{0xd2, 0x9f}, pvr[2:]...), 0xff), want: ErrMalformed, wantAs: new(*cbor.IndefiniteLengthError)},
		{name: "three elements", in: append([]byte{0xd2, 0x83}, pvr[2:len(pvr)-66]...), want: ErrMalformed},
		{name: "five elements", in: append(append([]byte{0xd2, 0x85}, pvr[2:]...), 0x40), want: ErrMalformed},
		{name: "duplicate key unprotected", in: envelope(es256, mustHex(t, "a2 04 41 01 04 41 02"), payload, sig), want: ErrMalformed, wantAs: new(*cbor.DupMapKeyError)},
		{name: "duplicate key protected", in: envelope(mustHex(t, "a2 01 26 01 26"), []byte{0xa0}, payload, sig), want: ErrMalformed, wantAs: new(*cbor.DupMapKeyError)},
		{name: "non-preferred payload length", in: bytes.Join([][]byte{{0xd2, 0x84, 0x43}, es256, {0xa0, 0x59, 0x00, 0x7e}, payload, appendBstr(nil, sig)}, nil), want: ErrMalformed},
		{name: "protected is a tstr", in: bytes.Join([][]byte{{0xd2, 0x84, 0x63}, es256, {0xa0}, appendBstr(nil, payload), appendBstr(nil, sig)}, nil), want: ErrMalformed},
		{name: "protected not a map", in: envelope([]byte{0x01}, []byte{0xa0}, payload, sig), want: ErrMalformed},
		{name: "protected with trailing byte", in: envelope(append(bytes.Clone(es256), 0x00), []byte{0xa0}, payload, sig), want: ErrMalformed},
		{name: "unprotected not a map", in: envelope(es256, []byte{0x80}, payload, sig), want: ErrMalformed},
		{name: "detached payload", in: bytes.Join([][]byte{{0xd2, 0x84, 0x43}, es256, {0xa0, 0xf6}, appendBstr(nil, sig)}, nil), want: ErrMalformed},
		{name: "empty signature", in: envelope(es256, []byte{0xa0}, payload, nil), want: ErrMalformed},
		{name: "no alg", in: envelope(nil, []byte{0xa0}, payload, sig), want: ErrAlgorithm},
		{name: "alg unprotected only", in: envelope(nil, []byte{0xa1, 0x01, 0x26}, payload, sig), want: ErrAlgorithm},
		{name: "alg in both buckets", in: envelope(es256, []byte{0xa1, 0x01, 0x26}, payload, sig), want: ErrMalformed},
		{name: "alg is text", in: envelope(mustHex(t, "a1 01 65 45533235 36"), []byte{0xa0}, payload, sig), want: ErrAlgorithm},
		{name: "unknown crit", in: envelope(mustHex(t, "a3 01 26 02 81 18 63 18 63 00"), []byte{0xa0}, payload, sig), want: ErrUnsupportedHeader},
		{name: "crit in unprotected", in: envelope(es256, mustHex(t, "a1 02 81 04"), payload, sig), want: ErrMalformed},
		{name: "empty crit", in: envelope(mustHex(t, "a2 01 26 02 80"), []byte{0xa0}, payload, sig), want: ErrMalformed},
		{name: "crit label absent", in: envelope(mustHex(t, "a2 01 26 02 81 18 20"), []byte{0xa0}, payload, sig), want: ErrMalformed},
		{name: "kid in both buckets", in: envelope(mustHex(t, "a2 01 26 04 41 01"), mustHex(t, "a1 04 41 01"), payload, sig), want: ErrMalformed},
		{name: "kid is text", in: envelope(es256, mustHex(t, "a1 04 61 41"), payload, sig), want: ErrMalformed},
		{name: "label is bstr", in: envelope(es256, mustHex(t, "a1 41 01 00"), payload, sig), want: ErrMalformed},
		{name: "x5bag is int", in: envelope(es256, mustHex(t, "a1 18 20 01"), payload, sig), want: ErrMalformed},
		{name: "x5bag empty array", in: envelope(es256, mustHex(t, "a1 18 20 80"), payload, sig), want: ErrMalformed},
		{name: "x5bag array of int", in: envelope(es256, mustHex(t, "a1 18 20 81 01"), payload, sig), want: ErrMalformed},
		{name: "x5bag empty bstr", in: envelope(es256, mustHex(t, "a1 18 20 40"), payload, sig), want: ErrMalformed},
		{name: "invalid UTF-8 label", in: envelope(es256, mustHex(t, "a1 61 ff 00"), payload, sig), want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, %v; want %v", m, err, tc.want)
			}
			if tc.wantNot != nil && errors.Is(err, tc.wantNot) {
				t.Fatalf("Parse = %v, must not be %v", err, tc.wantNot)
			}
			if tc.wantAs != nil && !errors.As(err, tc.wantAs) {
				t.Fatalf("Parse = %v, cause is not %T", err, tc.wantAs)
			}
		})
	}
}

func TestParseAcceptsHeaderVariants(t *testing.T) {
	key := cbrskivec.Key(t, "privkey_pledge.pem")
	payload := []byte{0xa0}
	tests := []struct {
		name        string
		protected   []byte
		unprotected []byte
		wantKID     []byte
	}{
		{name: "known crit", protected: mustHex(t, "a3 01 26 02 81 04 04 42 0102"), unprotected: []byte{0xa0}, wantKID: []byte{1, 2}},
		{name: "unknown non-critical labels ignored", protected: mustHex(t, "a2 01 26 63 666f6f 01"), unprotected: mustHex(t, "a1 19 ffff 80")},
		{name: "unprotected kid", protected: mustHex(t, "a1 01 26"), unprotected: mustHex(t, "a1 04 43 59ab3e"), wantKID: []byte{0x59, 0xab, 0x3e}},
		{name: "protected int not in preferred serialization", protected: mustHex(t, "a1 01 38 06"), unprotected: []byte{0xa0}},
		{name: "protected map not deterministic", protected: mustHex(t, "a2 04 41 07 01 26"), unprotected: []byte{0xa0}, wantKID: []byte{7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := gocose.NewSigner(gocose.AlgorithmES256, key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := signer.Sign(rand.Reader, sigStructure(tc.protected, payload))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(envelope(tc.protected, tc.unprotected, payload, sig))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := m.Verify(key.Public()); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !bytes.Equal(m.KID(), tc.wantKID) {
				t.Errorf("KID = %x, want %x", m.KID(), tc.wantKID)
			}
		})
	}
}

func TestSignRoundTrip(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certA := cbrskivec.Hex(t, "pvr.hex") // any bytes: x5bag entries are not parsed by Sign
	certB := []byte{0x30, 0x00}
	keys := []struct {
		name string
		key  crypto.Signer
		alg  int64
	}{
		{name: "ES256", key: p256, alg: AlgES256},
		{name: "ES384", key: p384, alg: AlgES384},
		{name: "EdDSA", key: ed, alg: AlgEdDSA},
	}
	opts := []struct {
		name       string
		opts       SignOptions
		wantUnprot []byte
	}{
		{name: "plain", opts: SignOptions{}, wantUnprot: []byte{0xa0}},
		{name: "protected kid", opts: SignOptions{KID: []byte{1, 2, 3}}, wantUnprot: []byte{0xa0}},
		{name: "unprotected kid", opts: SignOptions{UnprotectedKID: []byte{0x59, 0xab, 0x3e}}, wantUnprot: mustHex(t, "a1 04 43 59ab3e")},
		{name: "x5bag one", opts: SignOptions{X5Bag: [][]byte{certB}}, wantUnprot: mustHex(t, "a1 18 20 42 3000")},
		{name: "x5bag two", opts: SignOptions{X5Bag: [][]byte{certB, certA}}},
	}
	for _, k := range keys {
		for _, o := range opts {
			t.Run(k.name+"/"+o.name, func(t *testing.T) {
				msg, err := Sign(rand.Reader, k.key, []byte("payload"), o.opts)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				m, err := Parse(msg)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				pub := k.key.Public()
				if err := m.Verify(pub); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if m.Algorithm() != k.alg {
					t.Errorf("alg = %d, want %d", m.Algorithm(), k.alg)
				}
				wantProt, _ := Marshal(map[int64]any{1: k.alg})
				if len(o.opts.KID) > 0 {
					wantProt, _ = Marshal(map[int64]any{1: k.alg, 4: o.opts.KID})
				}
				if !bytes.Equal(m.RawProtected(), wantProt) {
					t.Errorf("protected = %x, want %x", m.RawProtected(), wantProt)
				}
				if k.alg == AlgES256 && len(o.opts.KID) == 0 && !bytes.Equal(m.RawProtected(), []byte{0xa1, 0x01, 0x26}) {
					t.Errorf("ES256 protected = %x, want a10126", m.RawProtected())
				}
				if o.wantUnprot != nil && !bytes.Equal(m.unprotected, o.wantUnprot) {
					t.Errorf("unprotected = %x, want %x", m.unprotected, o.wantUnprot)
				}
				wantKID := o.opts.KID
				if wantKID == nil {
					wantKID = o.opts.UnprotectedKID
				}
				if !bytes.Equal(m.KID(), wantKID) {
					t.Errorf("KID = %x, want %x", m.KID(), wantKID)
				}
				if len(m.X5BagRaw()) != len(o.opts.X5Bag) {
					t.Errorf("x5bag has %d entries, want %d", len(m.X5BagRaw()), len(o.opts.X5Bag))
				}
				for i := range o.opts.X5Bag {
					if !bytes.Equal(m.X5BagRaw()[i], o.opts.X5Bag[i]) {
						t.Errorf("x5bag[%d] differs", i)
					}
				}

				// Independent check: go-cose's own decoder and verifier.
				var gm gocose.Sign1Message
				if err := gm.UnmarshalCBOR(msg); err != nil {
					t.Fatalf("go-cose decode: %v", err)
				}
				gv, err := gocose.NewVerifier(gocose.Algorithm(k.alg), pub)
				if err != nil {
					t.Fatal(err)
				}
				if err := gm.Verify(nil, gv); err != nil {
					t.Fatalf("go-cose verify: %v", err)
				}
			})
		}
	}
}

func TestParseGoCoseMessage(t *testing.T) {
	key := cbrskivec.Key(t, "privkey_registrar.pem")
	signer, err := gocose.NewSigner(gocose.AlgorithmES256, key)
	if err != nil {
		t.Fatal(err)
	}
	msg := gocose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(gocose.AlgorithmES256)
	msg.Headers.Protected[int64(HeaderX5Bag)] = cbrskivec.Cert(t, "registrar.der").Raw
	msg.Payload = []byte("hello")
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	data, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := m.Verify(key.Public()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	certs, err := m.X5Bag()
	if err != nil {
		t.Fatalf("X5Bag (protected): %v", err)
	}
	if len(certs) != 1 || !certs[0].Equal(cbrskivec.Cert(t, "registrar.der")) {
		t.Fatalf("X5Bag = %v", certs)
	}
}

func TestVerifyAlgorithm(t *testing.T) {
	m, err := Parse(cbrskivec.Hex(t, "pvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  any
		want error
	}{
		{name: "P-384 key for ES256 message", pub: &p384.PublicKey, want: ErrAlgorithm},
		{name: "Ed25519 key for ES256 message", pub: edPub, want: ErrAlgorithm},
		{name: "RSA key", pub: &rsaKey.PublicKey, want: ErrAlgorithm},
		{name: "nil key", pub: nil, want: ErrKey},
		{name: "nil ECDSA key", pub: (*ecdsa.PublicKey)(nil), want: ErrKey},
		{name: "short Ed25519 key", pub: ed25519.PublicKey{1, 2}, want: ErrKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Verify(tc.pub); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}

	// A message claiming EdDSA, verified with the P-256 key that signed it.
	key := cbrskivec.Key(t, "privkey_pledge.pem")
	signer, err := gocose.NewSigner(gocose.AlgorithmES256, key)
	if err != nil {
		t.Fatal(err)
	}
	prot := []byte{0xa1, 0x01, 0x27}
	sig, err := signer.Sign(rand.Reader, sigStructure(prot, []byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	lie, err := Parse(envelope(prot, []byte{0xa0}, []byte{1}, sig))
	if err != nil {
		t.Fatal(err)
	}
	if err := lie.Verify(key.Public()); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("Verify = %v, want ErrAlgorithm", err)
	}
}

func TestSignErrors(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     crypto.Signer
		payload []byte
		opts    SignOptions
		want    error
	}{
		{name: "nil key", key: nil, want: ErrKey},
		{name: "RSA key", key: rsaKey, want: ErrAlgorithm},
		{name: "kid in both buckets", key: p256, opts: SignOptions{KID: []byte{1}, UnprotectedKID: []byte{2}}, want: ErrOptions},
		{name: "empty certificate", key: p256, opts: SignOptions{X5Bag: [][]byte{{0x30}, nil}}, want: ErrOptions},
		{name: "too large", key: p256, payload: make([]byte, MaxMessageSize), want: ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign(rand.Reader, tc.key, tc.payload, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Sign = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStripUnprotected(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			data := cbrskivec.Hex(t, v.file)
			m, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			stripped, err := m.StripUnprotected()
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(stripped)
			if err != nil {
				t.Fatalf("Parse(stripped): %v", err)
			}
			if err := s.Verify(cbrskivec.Cert(t, v.signer).PublicKey); err != nil {
				t.Fatalf("Verify(stripped): %v", err)
			}
			if !bytes.Equal(s.unprotected, []byte{0xa0}) {
				t.Errorf("unprotected = %x", s.unprotected)
			}
			if !bytes.Equal(s.RawProtected(), m.RawProtected()) || !bytes.Equal(s.Payload(), m.Payload()) || !bytes.Equal(s.Signature(), m.Signature()) {
				t.Error("signed parts changed")
			}
			if _, err := s.X5Bag(); !errors.Is(err, ErrNoX5Bag) {
				t.Errorf("X5Bag after strip = %v, want ErrNoX5Bag", err)
			}
			if bytes.Equal(m.unprotected, []byte{0xa0}) && !bytes.Equal(stripped, data) {
				t.Error("stripping an empty unprotected header changed the bytes")
			}
		})
	}
	var zero Sign1
	if _, err := zero.StripUnprotected(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero Sign1: %v", err)
	}
}

func TestX5Bag(t *testing.T) {
	rvr, err := Parse(cbrskivec.Hex(t, "rvr.hex"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := rvr.X5Bag()
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("%d certificates, want 2", len(certs))
	}
	if !strings.Contains(certs[0].Subject.CommonName, "Registrar") || certs[1].Subject.CommonName != "Custom-ER Global CA" {
		t.Errorf("subjects %q, %q", certs[0].Subject, certs[1].Subject)
	}
	// The x5bag holds the 2022-12-06 certificates, registrar.der the
	// 2022-12-09 regeneration: same key, different bytes.
	reg := cbrskivec.Cert(t, "registrar.der")
	if certs[0].Equal(reg) {
		t.Error("expected different certificate bytes (spec §9 pitfall 10)")
	}
	if !bytes.Equal(certs[0].RawSubjectPublicKeyInfo, reg.RawSubjectPublicKeyInfo) {
		t.Error("x5bag registrar key differs from registrar.der")
	}
	if err := certs[0].CheckSignatureFrom(certs[1]); err != nil {
		t.Errorf("registrar not issued by the domain CA in the bag: %v", err)
	}

	voucher, err := Parse(cbrskivec.Hex(t, "voucher.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := voucher.X5Bag(); !errors.Is(err, ErrNoX5Bag) {
		t.Fatalf("voucher X5Bag = %v, want ErrNoX5Bag", err)
	}

	key := cbrskivec.Key(t, "privkey_registrar.pem")
	bad, err := Sign(rand.Reader, key, []byte{1}, SignOptions{X5Bag: [][]byte{{0x30, 0x00}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.X5Bag(); !errors.Is(err, ErrCertificate) {
		t.Fatalf("X5Bag = %v, want ErrCertificate", err)
	}
}

func TestKeyID(t *testing.T) {
	tests := []struct {
		name string
		cert string
		want []byte
	}{
		// openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum
		{name: "pledge", cert: "pledge.der", want: mustHex(t, "ab1ba62219978138")},
		{name: "registrar", cert: "registrar.der", want: mustHex(t, "39bc09797383bfd7")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cbrskivec.Cert(t, tc.cert)
			got, err := KeyID(c.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("KeyID = %x, want %x", got, tc.want)
			}
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			if !bytes.Equal(got, sum[:8]) {
				t.Fatal("KeyID is not SHA-256(SPKI)[:8]")
			}
		})
	}
	if _, err := KeyID(struct{}{}); !errors.Is(err, ErrKey) {
		t.Fatalf("KeyID(struct{}) = %v, want ErrKey", err)
	}
}

func TestMarshalDeterministic(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want []byte
	}{
		{
			name: "map keys sorted bytewise",
			in:   map[any]any{100: 0, -1: 0, "a": 0, 10: 0, 1: 0},
			want: mustHex(t, "a5 01 00 0a 00 18 64 00 20 00 61 61 00"),
		},
		{name: "shortest float", in: 1.5, want: mustHex(t, "f9 3e00")},
		{name: "shortest int", in: uint64(24), want: mustHex(t, "18 18")},
		{name: "struct keyasint", in: struct {
			B int `cbor:"2,keyasint"`
			A int `cbor:"1,keyasint"`
		}{B: 2, A: 1}, want: mustHex(t, "a2 01 01 02 02")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Marshal = %x, want %x", got, tc.want)
			}
		})
	}
}

func TestUnmarshalStrict(t *testing.T) {
	type rec struct {
		A int `cbor:"1,keyasint"`
	}
	tests := []struct {
		name   string
		in     []byte
		want   error
		wantAs any
	}{
		{name: "oversize", in: make([]byte, MaxMessageSize+1), want: ErrTooLarge},
		{name: "duplicate key", in: mustHex(t, "a2 01 01 01 02"), want: ErrMalformed, wantAs: new(*cbor.DupMapKeyError)},
		{name: "indefinite map", in: mustHex(t, "bf 01 01 ff"), want: ErrMalformed, wantAs: new(*cbor.IndefiniteLengthError)},
		{name: "unknown field", in: mustHex(t, "a2 01 01 02 02"), want: ErrMalformed, wantAs: new(*cbor.UnknownFieldError)},
		{name: "nested too deep", in: append(bytes.Repeat([]byte{0xa1, 0x01}, MaxNestedLevels+1), 0x00), want: ErrMalformed, wantAs: new(*cbor.MaxNestedLevelError)},
		{name: "too many map pairs", in: append(mustHex(t, "b9 0101"), bytes.Repeat([]byte{0x00}, 2*(MaxMapPairs+1))...), want: ErrMalformed, wantAs: new(*cbor.MaxMapPairsError)},
		{name: "trailing bytes", in: mustHex(t, "a1 01 01 00"), want: ErrMalformed, wantAs: new(*cbor.ExtraneousDataError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r rec
			err := Unmarshal(tc.in, &r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unmarshal = %v, want %v", err, tc.want)
			}
			if tc.wantAs != nil && !errors.As(err, tc.wantAs) {
				t.Fatalf("Unmarshal = %v, cause is not %T", err, tc.wantAs)
			}
		})
	}
	var r rec
	if err := Unmarshal(mustHex(t, "a1 01 07"), &r); err != nil || r.A != 7 {
		t.Fatalf("Unmarshal = %v, %+v", err, r)
	}
	var x any
	if err := Unmarshal(mustHex(t, "01"), &x); err != nil {
		t.Fatal(err)
	}
	if _, ok := x.(int64); !ok {
		t.Fatalf("integer decoded into any as %T, want int64", x)
	}
}
