package cose

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

// FuzzParse checks that Parse never panics, that every error wraps a
// sentinel, that an accepted message has exactly one encoding (re-encoding
// reproduces the input), that stripping the unprotected header keeps the
// signed parts, and that nothing but the draft's own signed content verifies
// under the draft's keys (non-malleability). Seeds: the draft's signed
// examples (internal/cbrskivec/testdata).
func FuzzParse(f *testing.F) {
	for _, v := range vectors {
		data := cbrskivec.Hex(f, v.file)
		f.Add(data)
		m, err := Parse(data)
		if err != nil {
			f.Fatalf("seed %s: %v", v.file, err)
		}
		if s, err := m.StripUnprotected(); err == nil {
			f.Add(s)
		}
	}

	// Signed content (protected header and payload) known to be genuine
	// per key. Signatures are not compared: ECDSA signatures are
	// randomized, and (r, n-s) is as valid as (r, s).
	type signed struct{ protected, payload []byte }
	keys := map[string]crypto.PublicKey{}
	genuine := map[string][]signed{}
	for _, v := range vectors {
		m, err := Parse(cbrskivec.Hex(f, v.file))
		if err != nil {
			f.Fatal(err)
		}
		keys[v.signer] = cbrskivec.Cert(f, v.signer).PublicKey
		genuine[v.signer] = append(genuine[v.signer], signed{m.RawProtected(), m.Payload()})
	}

	// One more seed with a protected kid and a two-certificate x5bag,
	// signed with the pledge key: also genuine.
	withKID, err := Sign(nil, cbrskivec.Key(f, "privkey_pledge.pem"), []byte{0xa0}, SignOptions{KID: []byte{1}, X5Bag: [][]byte{{0x30, 0x00}, {0x30, 0x00}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withKID)
	m, err := Parse(withKID)
	if err != nil {
		f.Fatal(err)
	}
	genuine["pledge.der"] = append(genuine["pledge.der"], signed{m.RawProtected(), m.Payload()})

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			for _, s := range []error{ErrTooLarge, ErrMalformed, ErrAlgorithm, ErrUnsupportedHeader} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		again, err := m.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) || !bytes.Equal(m.Raw(), data) {
			t.Fatal("accepted message has a second encoding")
		}
		stripped, err := m.StripUnprotected()
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(stripped)
		if err != nil {
			t.Fatalf("stripped message does not parse: %v", err)
		}
		if !bytes.Equal(s.RawProtected(), m.RawProtected()) || !bytes.Equal(s.Payload(), m.Payload()) || !bytes.Equal(s.Signature(), m.Signature()) {
			t.Fatal("stripping changed signed parts")
		}
		if s2, _ := s.StripUnprotected(); !bytes.Equal(s2, stripped) {
			t.Fatal("stripping is not idempotent")
		}
		for name, pub := range keys {
			if m.Verify(pub) != nil {
				continue
			}
			ok := false
			for _, g := range genuine[name] {
				ok = ok || bytes.Equal(m.RawProtected(), g.protected) && bytes.Equal(m.Payload(), g.payload)
			}
			if !ok {
				t.Fatalf("forged content verifies under the %s key", name)
			}
		}
	})
}
