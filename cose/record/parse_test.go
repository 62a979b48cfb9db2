package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// validPayloadMap is a valid "decommission" record as a generic map, for
// tests that break one thing at a time.
func validPayloadMap() map[any]any {
	return map[any]any{
		1: 1,
		2: "decommission",
		3: deviceA[:],
		4: serialA,
		5: uint64(t0.Unix()),
		6: 42,
		7: nil,
		8: map[any]any{2: []any{}},
	}
}

// mustSignRaw signs r's payload without the body checks Sign applies, so
// that Parse's own checks can be tested.
func mustSignRaw(tb testing.TB, key *ecdsa.PrivateKey, r *Record) []byte {
	tb.Helper()
	m := validPayloadMap()
	m[2], m[3], m[4], m[5], m[6] = string(r.Type), r.Device[:], r.Serial, uint64(r.Time.Unix()), r.Seq
	body := map[any]any{}
	for k, v := range r.Body {
		body[k] = v
	}
	m[8] = body
	payload, err := cose.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return signPayload(tb, key, payload)
}

// signPayload signs an arbitrary payload the way Sign does (protected kid,
// low-S), so that Parse gets past the envelope checks.
func signPayload(tb testing.TB, key *ecdsa.PrivateKey, payload []byte) []byte {
	tb.Helper()
	msg, err := cose.Sign(rand.Reader, key, payload, cose.SignOptions{KID: mustKeyID(tb, &key.PublicKey)})
	if err != nil {
		tb.Fatal(err)
	}
	lowS(msg[len(msg)-sigSize:])
	return msg
}

// envelope builds COSE_Sign1_Tagged from raw parts in preferred
// serialization (short payloads only).
func envelope(protected, unprotected, payload, sig []byte) []byte {
	b := []byte{0xd2, 0x84} // #6.18, array(4)
	b = appendHead(b, majorBstr, uint64(len(protected)))
	b = append(b, protected...)
	b = append(b, unprotected...)
	b = appendHead(b, majorBstr, uint64(len(payload)))
	b = append(b, payload...)
	b = appendHead(b, majorBstr, uint64(len(sig)))
	return append(b, sig...)
}

// TestParsePayloadErrors breaks a valid payload in one way per case and
// checks the sentinel.
func TestParsePayloadErrors(t *testing.T) {
	key := gatewayKey(t)
	valid, err := cose.Marshal(validPayloadMap())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePayload(valid); err != nil {
		t.Fatalf("valid payload: %v", err)
	}
	set := func(k, v any) []byte {
		m := validPayloadMap()
		m[k] = v
		b, err := cose.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	del := func(k any) []byte {
		m := validPayloadMap()
		delete(m, k)
		b, err := cose.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// replaceTail swaps the encoded body {} (the last byte of valid) for b.
	replaceTail := func(b ...byte) []byte { return append(bytes.Clone(valid[:len(valid)-1]), b...) }
	deep := make([]byte, 0, 40)
	for range 20 {
		deep = append(deep, 0x81) // array(1)
	}
	deep = append(deep, 0x00)

	tests := []struct {
		name    string
		payload []byte
		want    error
	}{
		{name: "version 2", payload: set(1, 2), want: ErrVersion},
		{name: "version 0", payload: set(1, 0), want: ErrVersion},
		{name: "version text", payload: set(1, "1"), want: ErrVersion},
		{name: "version -1", payload: set(1, -1), want: ErrVersion},
		{name: "unknown type", payload: set(2, "rekey"), want: ErrType},
		{name: "type upper case", payload: set(2, "Reset"), want: ErrType},
		{name: "type as bytes", payload: set(2, []byte("reset")), want: ErrField},
		{name: "device 31 bytes", payload: set(3, deviceA[:31]), want: ErrField},
		{name: "device 33 bytes", payload: set(3, append(deviceA[:], 0)), want: ErrField},
		{name: "device as text", payload: set(3, string(deviceA[:])), want: ErrMalformed}, // invalid UTF-8
		{name: "device null", payload: set(3, nil), want: ErrField},
		{name: "serial empty", payload: set(4, ""), want: ErrField},
		{name: "serial 256 bytes", payload: set(4, string(bytes.Repeat([]byte{'a'}, 256))), want: ErrField},
		{name: "serial as bytes", payload: set(4, []byte(serialA)), want: ErrField},
		{name: "float time", payload: set(5, 1.7e9), want: ErrField},
		{name: "negative time", payload: set(5, -1), want: ErrField},
		{name: "time after 9999", payload: set(5, uint64(maxTime+1)), want: ErrField},
		{name: "tagged time", payload: set(5, cborTag1(t0.Unix())), want: ErrField},
		{name: "time as text", payload: set(5, "2026-01-05T10:00:00Z"), want: ErrField},
		{name: "negative seq", payload: set(6, -42), want: ErrField},
		{name: "seq 0", payload: set(6, 0), want: ErrField},
		{name: "float seq", payload: set(6, 42.5), want: ErrField},
		{name: "seq bignum", payload: set(6, new(big.Int).Lsh(big.NewInt(1), 70)), want: ErrField},
		{name: "prev 31 bytes", payload: set(7, make([]byte, 31)), want: ErrField},
		{name: "prev false", payload: set(7, false), want: ErrField},
		{name: "prev undefined", payload: replaceTail7(t, valid, 0xf7), want: ErrField},
		{name: "text-keyed body", payload: set(8, map[string]any{"a": 1}), want: ErrField},
		{name: "body with int and text key", payload: set(8, map[any]any{1: 1, "1": 1}), want: ErrField},
		{name: "body array", payload: set(8, []any{}), want: ErrField},
		{name: "body null", payload: set(8, nil), want: ErrField},
		{name: "body key beyond int64", payload: set(8, map[uint64]any{1 << 63: 1}), want: ErrField},
		{name: "body key bytes", payload: set(8, map[any]any{"k": 1, false: 2}), want: ErrField},
		{name: "extra key 9", payload: set(9, 0), want: ErrUnknownKey},
		{name: "extra key 0", payload: set(0, 0), want: ErrUnknownKey},
		{name: "extra key -1", payload: set(-1, 0), want: ErrUnknownKey},
		{name: "extra text key", payload: set("type", "reset"), want: ErrUnknownKey},
		{name: "missing prev", payload: del(7), want: ErrMissingKey},
		{name: "missing body", payload: del(8), want: ErrMissingKey},
		{name: "missing version", payload: del(1), want: ErrMissingKey},
		{name: "empty map", payload: []byte{0xa0}, want: ErrMissingKey},
		{name: "duplicate key", payload: append(append([]byte{0xa9}, valid[1:]...), 0x01, 0x01), want: ErrMalformed},
		{name: "duplicate body key", payload: replaceTail(0xa2, 0x01, 0x00, 0x01, 0x00), want: ErrMalformed},
		{name: "duplicate key after canonicalization", payload: replaceTail(0xa2, 0x01, 0x00, 0x18, 0x01, 0x00), want: ErrMalformed},
		{name: "non-shortest seq", payload: bytes.Replace(valid, []byte{0x06, 0x18, 0x2a}, []byte{0x06, 0x19, 0x00, 0x2a}, 1), want: ErrEncoding},
		{name: "keys out of order", payload: swapFirstPairs(t, valid), want: ErrEncoding},
		{name: "body float64", payload: replaceTail(0xa1, 0x01, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0), want: ErrEncoding},
		{name: "body NaN with payload", payload: replaceTail(0xa1, 0x01, 0xf9, 0x7e, 0x01), want: ErrEncoding},
		{name: "indefinite body", payload: replaceTail(0xbf, 0xff), want: ErrMalformed},
		{name: "indefinite payload", payload: []byte{0xbf, 0xff}, want: ErrMalformed},
		{name: "trailing byte", payload: append(bytes.Clone(valid), 0x00), want: ErrMalformed},
		{name: "truncated", payload: valid[:len(valid)-1], want: ErrMalformed},
		{name: "array", payload: []byte{0x80}, want: ErrMalformed},
		{name: "empty", payload: nil, want: ErrMalformed},
		{name: "invalid UTF-8 serial", payload: bytes.Replace(valid, []byte(serialA), []byte("JADA12345678\xff"), 1), want: ErrMalformed},
		{name: "nesting too deep", payload: replaceTail(append([]byte{0xa1, 0x01}, deep...)...), want: ErrMalformed},
		{name: "reserved additional information", payload: replaceTail(0xa1, 0x01, 0x1c), want: ErrMalformed},
		{name: "two-byte simple below 32", payload: replaceTail(0xa1, 0x01, 0xf8, 0x10), want: ErrMalformed},
		{name: "huge array count", payload: replaceTail(0xa1, 0x01, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), want: ErrMalformed},
		{name: "huge map count", payload: replaceTail(0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), want: ErrMalformed},
		{name: "huge string length", payload: replaceTail(0xa1, 0x01, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), want: ErrMalformed},
		{name: "checkin body empty", payload: set(2, "checkin"), want: ErrBody},
		{name: "enroll body empty", payload: set(2, "enroll"), want: ErrBody},
		{name: "overdue body missing missed", payload: setMany(t, map[any]any{2: "overdue", 8: map[any]any{1: nil, 2: 1}}), want: ErrBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePayload(tc.payload)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParsePayload: got %v, want %v", err, tc.want)
			}
			// The same through the whole record.
			_, err = Parse(signPayload(t, key, tc.payload))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse: got %v, want %v", err, tc.want)
			}
		})
	}
}

// cborTag1 is an epoch-based date/time (RFC 8949 §3.4.2).
func cborTag1(sec int64) any { return cbor.Tag{Number: 1, Content: sec} }

// setMany overrides several keys of the valid payload map.
func setMany(tb testing.TB, kv map[any]any) []byte {
	tb.Helper()
	m := validPayloadMap()
	for k, v := range kv {
		m[k] = v
	}
	b, err := cose.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// replaceTail7 sets prev (the byte f6 before the body) to b.
func replaceTail7(tb testing.TB, valid []byte, b byte) []byte {
	tb.Helper()
	out := bytes.Clone(valid)
	i := bytes.LastIndex(out, []byte{0x07, cborNull, 0x08})
	if i < 0 {
		tb.Fatal("no prev in payload")
	}
	out[i+1] = b
	return out
}

// swapFirstPairs swaps the pairs 1: 1 and 2: "decommission" of the valid
// payload.
func swapFirstPairs(tb testing.TB, valid []byte) []byte {
	tb.Helper()
	typ := append([]byte{0x6c}, "decommission"...)
	prefix := append([]byte{0xa8, 0x01, 0x01, 0x02}, typ...)
	if !bytes.HasPrefix(valid, prefix) {
		tb.Fatalf("unexpected payload %x", valid)
	}
	out := append(append([]byte{0xa8, 0x02}, typ...), 0x01, 0x01)
	return append(out, valid[len(prefix):]...)
}

// TestParseEnvelopeErrors checks the COSE-level rules of records.
func TestParseEnvelopeErrors(t *testing.T) {
	key := gatewayKey(t)
	good := mustSign(t, key, baseRecord())
	m, err := cose.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	payload, sig := m.Payload(), m.Signature()
	kid := mustKeyID(t, &key.PublicKey)

	withX5Bag, err := cose.Sign(rand.Reader, key, payload, cose.SignOptions{KID: kid, X5Bag: [][]byte{{0x30, 0x00}}})
	if err != nil {
		t.Fatal(err)
	}
	noKID, err := cose.Sign(rand.Reader, key, payload, cose.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unprotKID, err := cose.Sign(rand.Reader, key, payload, cose.SignOptions{UnprotectedKID: kid})
	if err != nil {
		t.Fatal(err)
	}
	shortKID, err := cose.Sign(rand.Reader, key, payload, cose.SignOptions{KID: kid[:7]})
	if err != nil {
		t.Fatal(err)
	}
	highS := bytes.Clone(sig)
	new(big.Int).Sub(p256N, new(big.Int).SetBytes(sig[32:])).FillBytes(highS[32:])
	prot := m.RawProtected()

	tests := []struct {
		name string
		data []byte
		want []error
	}{
		{name: "empty", data: nil, want: []error{ErrMalformed, cose.ErrMalformed}},
		{name: "payload alone", data: payload, want: []error{ErrMalformed, cose.ErrMalformed}},
		{name: "untagged", data: good[1:], want: []error{ErrMalformed, cose.ErrMalformed}},
		{name: "too large", data: make([]byte, cose.MaxMessageSize+1), want: []error{ErrMalformed, cose.ErrTooLarge}},
		{name: "trailing byte", data: append(bytes.Clone(good), 0), want: []error{ErrMalformed, cose.ErrMalformed}},
		{name: "x5bag in unprotected", data: withX5Bag, want: []error{ErrHeader}},
		{name: "no kid", data: noKID, want: []error{ErrHeader}},
		{name: "kid unprotected", data: unprotKID, want: []error{ErrHeader}},
		{name: "7-byte kid", data: shortKID, want: []error{ErrHeader}},
		{name: "EdDSA alg", data: envelope(append([]byte{0xa2, 0x01, 0x27, 0x04, 0x48}, kid...), []byte{0xa0}, payload, sig), want: []error{ErrHeader}},
		{name: "extra protected parameter", data: envelope(append([]byte{0xa3, 0x01, 0x26, 0x03, 0x00, 0x04, 0x48}, kid...), []byte{0xa0}, payload, sig), want: []error{ErrHeader}},
		{name: "high-S signature", data: envelope(prot, []byte{0xa0}, payload, highS), want: []error{ErrSignatureEncoding}},
		{name: "63-byte signature", data: envelope(prot, []byte{0xa0}, payload, sig[:63]), want: []error{ErrSignatureEncoding}},
		{name: "65-byte signature", data: envelope(prot, []byte{0xa0}, payload, append(bytes.Clone(sig), 0)), want: []error{ErrSignatureEncoding}},
		{name: "DER signature", data: envelope(prot, []byte{0xa0}, payload, append([]byte{0x30, 0x44, 0x02, 0x20}, sig[:32]...)), want: []error{ErrSignatureEncoding}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("got %v, want %v", err, w)
				}
			}
		})
	}

	// The high-S twin of a valid record verifies under plain COSE: that is
	// the malleability the low-S rule removes.
	twin, err := cose.Parse(envelope(prot, []byte{0xa0}, payload, highS))
	if err != nil {
		t.Fatal(err)
	}
	if err := twin.Verify(&key.PublicKey); err != nil {
		t.Fatalf("high-S twin does not verify under COSE: %v", err)
	}
}

// TestVerify checks key and signature failures.
func TestVerify(t *testing.T) {
	key, other := gatewayKey(t), otherKey(t)
	good := mustSign(t, key, baseRecord())
	s := mustParse(t, good)

	// Another key's signature under our kid.
	m, err := cose.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	forged := signPayload(t, other, m.Payload())
	fm, err := cose.Parse(forged)
	if err != nil {
		t.Fatal(err)
	}
	forged = envelope(m.RawProtected(), []byte{0xa0}, m.Payload(), fm.Signature())

	p384 := otherP384(t)
	tests := []struct {
		name string
		data []byte
		pub  any
		want error
	}{
		{name: "other key", data: good, pub: &other.PublicKey, want: ErrKeyID},
		{name: "forged under our kid", data: forged, pub: &key.PublicKey, want: cose.ErrBadSignature},
		{name: "P-384 key", data: good, pub: &p384.PublicKey, want: ErrKey},
		{name: "nil key", data: good, pub: nil, want: ErrKey},
		{name: "nil ECDSA key", data: good, pub: (*ecdsa.PublicKey)(nil), want: ErrKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := mustParse(t, tc.data).Verify(tc.pub); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := s.Verify(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
}

// TestByteFlips flips every byte of a signed record in three ways; each
// result must fail Parse or Verify (non-malleability of the whole record).
func TestByteFlips(t *testing.T) {
	key := gatewayKey(t)
	for _, name := range []string{"chain/0003-checkin.hex", "chain/0007-transfer.hex"} {
		data := readHex(t, name)
		for i := range data {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				mod := bytes.Clone(data)
				mod[i] ^= x
				s, err := Parse(mod)
				if err != nil {
					continue
				}
				if err := s.Verify(&key.PublicKey); err == nil {
					t.Fatalf("%s: byte %d ^ %#x: still parses and verifies", name, i, x)
				}
			}
		}
	}
}
