package record

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tumbler-iot/tumbler/cose"
)

// sentinels are the errors every decoding failure must wrap one of.
var sentinels = []error{
	ErrMalformed, ErrEncoding, ErrHeader, ErrSignatureEncoding, ErrMissingKey,
	ErrUnknownKey, ErrVersion, ErrType, ErrField, ErrBody,
}

func wrapsSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// chainSeeds returns the committed chain records (testdata/chain).
func chainSeeds(f *testing.F) [][]byte {
	f.Helper()
	_, data := loadGoldenChain(f)
	return data
}

// FuzzParse checks that Parse never panics, that every error wraps a
// sentinel, that an accepted record has exactly one encoding (its payload
// re-encodes to the same bytes and ParsePayload agrees), that it renders,
// and that nothing but a committed record verifies under the committed key
// (non-malleability: no other bytes, not even a re-signed twin). Seeds:
// testdata/chain/*.hex.
func FuzzParse(f *testing.F) {
	key := gatewayKey(f)
	genuine := map[ID]bool{}
	for _, d := range chainSeeds(f) {
		f.Add(d)
		genuine[IDOf(d)] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !wrapsSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		payload, err := s.Record.MarshalCBOR()
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		if !bytes.Equal(payload, s.Sign1.Payload()) {
			t.Fatalf("payload has a second encoding:\n%x\n%x", s.Sign1.Payload(), payload)
		}
		again, err := s.Sign1.MarshalCBOR()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatal("envelope has a second encoding")
		}
		r, err := ParsePayload(payload)
		if err != nil || !reflect.DeepEqual(r, s.Record) {
			t.Fatalf("ParsePayload disagrees: %v", err)
		}
		if s.ID != IDOf(data) {
			t.Fatal("ID is not the hash of the bytes")
		}
		if _, err := Diagnostic(data); err != nil {
			t.Fatalf("Diagnostic: %v", err)
		}
		if _, err := JSON(s); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if s.Verify(&key.PublicKey) == nil && !genuine[s.ID] {
			t.Fatalf("forged record verifies: %x", data)
		}
	})
}

// FuzzParsePayload checks ParsePayload alone: errors wrap a sentinel, and
// an accepted payload re-encodes to itself. Seeds: the payloads of
// testdata/chain/*.hex.
func FuzzParsePayload(f *testing.F) {
	for _, d := range chainSeeds(f) {
		m, err := cose.Parse(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Payload())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParsePayload(data)
		if err != nil {
			if !wrapsSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		again, err := r.MarshalCBOR()
		if err != nil {
			t.Fatalf("accepted payload does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("second encoding:\n%x\n%x", data, again)
		}
	})
}

// FuzzVerifyChain feeds VerifyChain sequences of the committed chain's
// records, chosen by the fuzzer (each input byte picks one record), and
// compares the verdict and the failing index with a straightforward model
// of the rules: sequence numbers strictly increase, and each device's
// records appear as a prefix of its committed order. Seeds: the committed
// order and a few rearrangements of testdata/chain.
func FuzzVerifyChain(f *testing.F) {
	data := chainSeeds(f)
	recs := make([]*Signed, len(data))
	for i, d := range data {
		recs[i] = mustParse(f, d)
	}
	ordered := make([]byte, len(recs))
	for i := range ordered {
		ordered[i] = byte(i)
	}
	f.Add(ordered)
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{1, 0})
	f.Add([]byte{0, 2})
	f.Add([]byte{0, 0})
	f.Add([]byte{8, 7, 6})
	f.Add([]byte{})

	// position of each record within its device's committed order
	pos := make([]int, len(recs))
	count := map[DeviceID]int{}
	for i, s := range recs {
		pos[i] = count[s.Record.Device]
		count[s.Record.Device]++
	}

	f.Fuzz(func(t *testing.T, picks []byte) {
		if len(picks) > 64 {
			picks = picks[:64]
		}
		seq := make([]*Signed, len(picks))
		for i, p := range picks {
			seq[i] = recs[int(p)%len(recs)]
		}
		// The model.
		wantIndex := -1
		var last uint64
		next := map[DeviceID]int{}
		for i, p := range picks {
			j := int(p) % len(recs)
			r := recs[j].Record
			if (i > 0 && r.Seq <= last) || pos[j] != next[r.Device] {
				wantIndex = i
				break
			}
			last = r.Seq
			next[r.Device]++
		}

		err := VerifyChain(seq)
		if wantIndex < 0 {
			if err != nil {
				t.Fatalf("picks %v: %v", picks, err)
			}
			return
		}
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Index != wantIndex {
			t.Fatalf("picks %v: got %v, want a failure at %d", picks, err, wantIndex)
		}
		if !errors.Is(err, ErrSeqOrder) && !errors.Is(err, ErrFirstHasPrev) && !errors.Is(err, ErrChainBreak) {
			t.Fatalf("unexpected reason: %v", err)
		}
	})
}

// FuzzParseCheckInRequest checks the device payload decoder: errors wrap
// ErrBody; an accepted payload gives the same body as its canonical
// re-encoding, and the body survives SetBody and DecodeBody unchanged.
// Seeds: testdata/checkin/*.hex.
func FuzzParseCheckInRequest(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "checkin", "*.hex"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, name := range files {
		f.Add(readHex(f, filepath.Join("checkin", filepath.Base(name))))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCheckInRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBody) {
				t.Fatalf("error does not wrap ErrBody: %v", err)
			}
			return
		}
		canon, err := canonical(data)
		if err != nil {
			t.Fatalf("accepted input does not canonicalize: %v", err)
		}
		c2, err := ParseCheckInRequest(canon)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("canonical form decodes differently: %v", err)
		}
		r := baseRecord()
		if err := r.SetBody(c); err != nil {
			t.Fatalf("SetBody: %v", err)
		}
		var back CheckInBody
		if err := r.DecodeBody(&back); err != nil || !reflect.DeepEqual(&back, c) {
			t.Fatalf("body changed through the record: %v", err)
		}
	})
}

// FuzzCanonical checks the canonicalizer: errors wrap ErrMalformed; the
// result is well-formed for the strict decoder, never longer than the
// input, and a fixed point. Seeds: the payloads of testdata/chain and
// testdata/checkin.
func FuzzCanonical(f *testing.F) {
	for _, d := range chainSeeds(f) {
		m, err := cose.Parse(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Payload())
		f.Add(d)
	}
	for _, n := range []string{"minimal", "extra", "noncanonical"} {
		f.Add(readHex(f, "checkin/"+n+".hex"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := canonical(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if len(c) > len(data) {
			t.Fatalf("canonical form longer: %x -> %x", data, c)
		}
		if err := cose.DecMode().Wellformed(c); err != nil {
			t.Fatalf("canonical form not well-formed: %x: %v", c, err)
		}
		again, err := canonical(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not a fixed point: %x -> %x (%v)", c, again, err)
		}
	})
}
