package record

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/tumbler-iot/tumbler/cose"
)

// TestCanonical checks the re-encoding rules of RFC 8949 §4.2.1 item by
// item.
func TestCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "uint 1-byte head", in: "1817", want: "17"},
		{name: "uint 2-byte head", in: "190001", want: "01"},
		{name: "uint 4-byte head", in: "1a00000100", want: "190100"},
		{name: "uint 8-byte head", in: "1b00000000ffffffff", want: "1affffffff"},
		{name: "uint max", in: "1bffffffffffffffff", want: "1bffffffffffffffff"},
		{name: "nint", in: "3800", want: "20"},
		{name: "bstr length", in: "5800", want: "40"},
		{name: "tstr length", in: "780161", want: "6161"},
		{name: "array length", in: "980100", want: "8100"},
		{name: "map length", in: "b8010000", want: "a10000"},
		{name: "tag number", in: "d80100", want: "c100"},
		{name: "nested", in: "81d8181a00000001", want: "81d81801"},
		{name: "half kept", in: "f93c00", want: "f93c00"},
		{name: "single to half", in: "fa3f800000", want: "f93c00"},
		{name: "double to half", in: "fb3ff0000000000000", want: "f93c00"},
		{name: "double to single", in: "fb3ff0000020000000", want: "fa3f800001"},
		{name: "double kept", in: "fb3fb999999999999a", want: "fb3fb999999999999a"},
		{name: "single kept", in: "fa3dcccccd", want: "fa3dcccccd"},
		{name: "single subnormal half", in: "fa33800000", want: "f90001"},
		{name: "negative zero", in: "fb8000000000000000", want: "f98000"},
		{name: "infinity", in: "fa7f800000", want: "f97c00"},
		{name: "negative infinity", in: "fbfff0000000000000", want: "f9fc00"},
		{name: "NaN single", in: "fa7fc00000", want: "f97e00"},
		{name: "NaN with payload", in: "fb7ff8000000000001", want: "f97e00"},
		{name: "NaN half payload", in: "f97e01", want: "f97e00"},
		{name: "simple values", in: "84f4f5f6f7", want: "84f4f5f6f7"},
		{name: "two-byte simple", in: "f820", want: "f820"},
		{name: "map keys sorted", in: "a202000100", want: "a201000200"},
		{name: "map keys bytewise not length-first", in: "a262616100616200", want: "a261620062616100"},
		{name: "positive before negative", in: "a220000100", want: "a201002000"},
		{name: "map keys sorted after canonicalization", in: "a20200180100", want: "a201000200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := canonical(mustHex(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got %x, want %x", got, want)
			}
			again, err := canonical(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("not idempotent: %x, %v", again, err)
			}
		})
	}
}

// TestCanonicalErrors checks that ill-formed or out-of-limits input fails
// with ErrMalformed.
func TestCanonicalErrors(t *testing.T) {
	deep := bytes.Repeat([]byte{0x81}, cose.MaxNestedLevels+1)
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "empty", in: nil},
		{name: "truncated head", in: []byte{0x19, 0x00}},
		{name: "truncated string", in: []byte{0x62, 'a'}},
		{name: "truncated array", in: []byte{0x82, 0x01}},
		{name: "reserved ai", in: []byte{0x1c}},
		{name: "indefinite array", in: []byte{0x9f, 0xff}},
		{name: "indefinite bstr", in: []byte{0x5f, 0x41, 0x00, 0xff}},
		{name: "break alone", in: []byte{0xff}},
		{name: "two-byte simple below 32", in: []byte{0xf8, 0x1f}},
		{name: "invalid UTF-8", in: []byte{0x61, 0xff}},
		{name: "duplicate key", in: []byte{0xa2, 0x01, 0x00, 0x01, 0x00}},
		{name: "duplicate key after canonicalization", in: []byte{0xa2, 0x01, 0x00, 0x18, 0x01, 0x00}},
		{name: "trailing", in: []byte{0x01, 0x02}},
		{name: "too deep", in: append(deep, 0x00)},
		{name: "too deep tags", in: append(bytes.Repeat([]byte{0xc1}, cose.MaxNestedLevels+1), 0x00)},
		{name: "array count beyond input", in: []byte{0x9a, 0x00, 0x01, 0x00, 0x00}},
		{name: "array count beyond limit", in: append([]byte{0x99, 0x04, 0x01}, make([]byte, 1025)...)},
		{name: "map count beyond limit", in: append([]byte{0xb9, 0x01, 0x01}, make([]byte, 514)...)},
		{name: "string length beyond input", in: []byte{0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{name: "too large", in: make([]byte, cose.MaxMessageSize+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := canonical(tc.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// TestCanonicalMatchesEncoder checks that whatever cose.Marshal (fxamacker
// CoreDet) produces is a fixed point of canonical: the two agree on what
// deterministic means.
func TestCanonicalMatchesEncoder(t *testing.T) {
	values := []any{
		uint64(0), uint64(23), uint64(24), uint64(255), uint64(256), uint64(65535), uint64(65536),
		uint64(math.MaxUint32), uint64(math.MaxUint32 + 1), uint64(math.MaxUint64),
		int64(-1), int64(-24), int64(-25), int64(-256), int64(-257), int64(math.MinInt64),
		"", "a", string(bytes.Repeat([]byte{'x'}, 300)), []byte{}, make([]byte, 40),
		0.0, math.Copysign(0, -1), 1.0, 1.5, 65504.0, 65505.0, 1e-7, 5.960464477539063e-08, 0.1,
		math.Inf(1), math.Inf(-1), math.NaN(), float32(3.4028234663852886e+38), math.SmallestNonzeroFloat64,
		true, false, nil,
		[]any{uint64(1), "b", []any{}},
		map[any]any{"aa": 1, "b": 2, 10: 3, -1: 4, 100: 5, false: 6},
		map[int64]any{-1000: 1, 1000: 2, 0: 3},
	}
	for i, v := range values {
		b, err := cose.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := canonical(b)
		if err != nil {
			t.Fatalf("value %d (%v): %v", i, v, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("value %d (%v): encoder %x, canonical %x", i, v, b, got)
		}
	}
	// And in the other direction: canonicalized float items decode to
	// the same value and re-encode to themselves.
	for bits := uint64(0); bits < 1<<16; bits += 7 {
		in := []byte{0xf9, byte(bits >> 8), byte(bits)}
		got, err := canonical(in)
		if err != nil {
			t.Fatal(err)
		}
		var a, b float64
		if err := cose.Unmarshal(in, &a); err != nil {
			t.Fatal(err)
		}
		if err := cose.Unmarshal(got, &b); err != nil {
			t.Fatal(err)
		}
		if a != b && !(math.IsNaN(a) && math.IsNaN(b)) {
			t.Fatalf("%x -> %x changed the value", in, got)
		}
	}
}

// TestCanonicalAllocationBounded checks that adversarial inputs of the
// largest accepted size cost a bounded multiple of their size in
// allocations: many small maps, deep nesting, long arrays.
func TestCanonicalAllocationBounded(t *testing.T) {
	manyMaps := []byte{0x99, 0x04, 0x00} // array(1024)
	for range 1024 {
		manyMaps = append(manyMaps, 0xa1, 0x00, 0x00) // {0: 0}
	}
	deep := bytes.Repeat([]byte{0xa1, 0x00}, cose.MaxNestedLevels-1)
	deep = append(deep, 0x00)
	bigMap := []byte{0xb9, 0x01, 0x00} // map(256)
	for i := range 256 {
		bigMap = append(bigMap, 0x59, 0x00, 0xf0) // bstr(240) key, unique
		key := make([]byte, 240)
		key[0] = byte(i)
		bigMap = append(append(bigMap, key...), 0x00)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "1024 small maps", in: manyMaps},
		{name: "deep maps", in: deep},
		{name: "256 large keys", in: bigMap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := canonical(tc.in); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			const runs = 10
			for range runs {
				if _, err := canonical(tc.in); err != nil {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			per := (after.TotalAlloc - before.TotalAlloc) / runs
			t.Logf("%d bytes allocated for %d bytes of input", per, len(tc.in))
			if limit := uint64(64*len(tc.in) + 64<<10); per > limit {
				t.Fatalf("%d bytes allocated for %d bytes of input (limit %d)", per, len(tc.in), limit)
			}
		})
	}
}
