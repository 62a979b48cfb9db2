package meshcop

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// seed adds every testdata/*.hex file (golden vectors and seeds) to f.
func seed(f *testing.F) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, n := range names {
		f.Add(readHex(f, filepath.Base(n)))
	}
}

// FuzzDecode: whatever Decode accepts, Encode reproduces byte for byte
// (non-malleability: one wire form per decoded value), and Decode of the
// encoding gives the same TLVs.
func FuzzDecode(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := Decode(b)
		if err != nil {
			return
		}
		out, err := ts.Encode()
		if err != nil {
			t.Fatalf("decoded TLVs do not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip\n%x\n%x", b, out)
		}
		again, err := Decode(out)
		if err != nil || !tlvsEqual(ts, again) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzMessages: each typed message that parses re-encodes to bytes that
// parse to the same message.
func FuzzMessages(f *testing.F) {
	seed(f)
	type message interface{ MarshalBinary() ([]byte, error) }
	parsers := []func([]byte) (message, error){
		func(b []byte) (message, error) { return ParseRelay(b) },
		func(b []byte) (message, error) { return ParsePetition(b) },
		func(b []byte) (message, error) { return ParsePetitionResult(b) },
		func(b []byte) (message, error) { return ParseKeepAlive(b) },
		func(b []byte) (message, error) { return ParseStateResult(b) },
		func(b []byte) (message, error) { return ParseCommissionerSet(b) },
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i, parse := range parsers {
			m, err := parse(b)
			if err != nil {
				continue
			}
			out, err := m.MarshalBinary()
			if err != nil {
				t.Fatalf("parser %d: parsed message does not encode: %v", i, err)
			}
			m2, err := parse(out)
			if err != nil {
				t.Fatalf("parser %d: re-encoded message does not parse: %v", i, err)
			}
			if !reflect.DeepEqual(normalize(m), normalize(m2)) {
				t.Fatalf("parser %d: round trip\n%+v\n%+v", i, m, m2)
			}
		}
	})
}

// TestSeedsListed keeps testdata/README.md honest: every vector file is
// described there.
func TestSeedsListed(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("testdata", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join("testdata", "*.hex"))
	for _, n := range names {
		if !strings.Contains(string(readme), filepath.Base(n)) {
			t.Errorf("%s is not described in testdata/README.md", filepath.Base(n))
		}
	}
}
