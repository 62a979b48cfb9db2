package voucher

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

// addSeeds adds every draft vector (internal/cbrskivec/testdata/*.hex) to the corpus: COSE messages as
// their payload, everything else as is.
func addSeeds(f *testing.F) {
	for _, name := range cbrskivec.HexFiles(f) {
		data := cbrskivec.Hex(f, name)
		if m, err := cose.Parse(data); err == nil {
			f.Add(m.Payload())
			continue
		}
		f.Add(data)
	}
}

// isSentinel reports whether err wraps one of the package's decoding
// sentinels.
func isSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrUnknownLeaf, ErrMissingField, ErrStatusVersion, cose.ErrTooLarge} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzParseRequest: anything ParseRequest accepts must encode, and
// decode→encode→decode must be stable (same value, same bytes).
func FuzzParseRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		enc, err := r.MarshalCBOR()
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		r2, err := ParseRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("decode→encode→decode changed the request\n%+v\n%+v", r, r2)
		}
		enc2, err := r2.MarshalCBOR()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}

// FuzzParseVoucher: anything ParseVoucher accepts must encode, and
// decode→encode→decode must be stable (same value, same bytes).
func FuzzParseVoucher(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVoucher(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		enc, err := v.MarshalCBOR()
		if err != nil {
			t.Fatalf("accepted voucher does not encode: %v", err)
		}
		v2, err := ParseVoucher(enc)
		if err != nil {
			t.Fatalf("re-encoded voucher rejected: %v", err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("decode→encode→decode changed the voucher\n%+v\n%+v", v, v2)
		}
		enc2, err := v2.MarshalCBOR()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}

// FuzzParseStatus: anything ParseStatus accepts must encode, and
// decode→encode→decode must be stable (same value, same bytes).
func FuzzParseStatus(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStatus(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		enc, err := s.MarshalCBOR()
		if err != nil {
			t.Fatalf("accepted status does not encode: %v", err)
		}
		s2, err := ParseStatus(enc)
		if err != nil {
			t.Fatalf("re-encoded status rejected: %v", err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("decode→encode→decode changed the status\n%+v\n%+v", s, s2)
		}
		enc2, err := s2.MarshalCBOR()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}
