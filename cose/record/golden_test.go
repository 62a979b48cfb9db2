package record

import (
	"bytes"
	"crypto/rand"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tumbler-iot/tumbler/cose"
)

// update regenerates testdata/chain and testdata/render from goldenChain
// with the committed key: go test ./cose/record -run TestGolden -update.
// Signatures are randomized, so every run changes all files; only do it
// when the format changes, and say so in the commit.
var update = flag.Bool("update", false, "regenerate the golden records in testdata")

func TestGoldenUpdate(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate testdata")
	}
	key := gatewayKey(t)
	heads := map[DeviceID]ID{}
	for _, e := range goldenChain(t) {
		var prev *ID
		if h, ok := heads[e.device]; ok {
			prev = &h
		}
		data, err := Sign(rand.Reader, key, e.record(t, prev))
		if err != nil {
			t.Fatal(err)
		}
		heads[e.device] = IDOf(data)
		if err := os.WriteFile(filepath.Join("testdata", "chain", e.file), []byte(formatHex(data)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range renderGolden {
		s := mustParse(t, readHex(t, filepath.Join("chain", name+".hex")))
		d, err := Diagnostic(s.Raw())
		if err != nil {
			t.Fatal(err)
		}
		j, err := JSON(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "render", name+".diag"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "render", name+".json"), j, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// renderGolden names the chain records whose renderings are committed.
var renderGolden = []string{"0001-enroll", "0003-checkin", "0006-overdue", "0007-transfer"}

// TestGoldenChain checks every committed record against its definition:
// it parses, verifies under the committed key, decodes to the expected
// record, its payload re-encodes to the same bytes, signing the expected
// record again gives the same payload, and prev names the device's
// previous file.
func TestGoldenChain(t *testing.T) {
	key := gatewayKey(t)
	heads := map[DeviceID]ID{}
	for _, e := range goldenChain(t) {
		t.Run(e.file, func(t *testing.T) {
			data := readHex(t, filepath.Join("chain", e.file))
			s, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(&key.PublicKey); err != nil {
				t.Fatal(err)
			}
			// The envelope is also a valid COSE_Sign1 for the cose package,
			// which is tested against the cBRSKI draft's vectors.
			m, err := cose.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Verify(&key.PublicKey); err != nil {
				t.Fatal(err)
			}

			var prev *ID
			if h, ok := heads[e.device]; ok {
				prev = &h
			}
			want := e.record(t, prev)
			if !reflect.DeepEqual(s.Record, want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", s.Record, want)
			}
			if s.ID != IDOf(data) {
				t.Fatal("ID is not SHA-256 of the bytes")
			}

			again, err := s.Record.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, m.Payload()) {
				t.Fatalf("decode→encode changed the payload:\n%x\n%x", again, m.Payload())
			}
			resigned := mustParse(t, mustSign(t, key, want))
			if !bytes.Equal(resigned.Sign1.Payload(), m.Payload()) || !bytes.Equal(resigned.Sign1.RawProtected(), m.RawProtected()) {
				t.Fatal("signing the same record gives another payload or header")
			}

			if e.body != nil {
				got := reflect.New(reflect.TypeOf(e.body).Elem()).Interface().(TypedBody)
				if err := s.Record.DecodeBody(got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, e.body) {
					t.Fatalf("body\n%+v\nwant\n%+v", got, e.body)
				}
			}
			heads[e.device] = s.ID
		})
	}
}

// TestGoldenPayloadBytes pins the exact payload of one record, annotated,
// so that a change of encoding cannot hide behind a regenerated testdata.
func TestGoldenPayloadBytes(t *testing.T) {
	s := mustParse(t, readHex(t, "chain/0005-checkin.hex"))
	prevB := IDOf(readHex(t, "chain/0002-enroll.hex"))
	want := bytes.Join([][]byte{
		{0xa8},                   // map(8)
		{0x01, 0x01},             // 1 (version): 1
		{0x02, 0x67},             // 2 (type): tstr(7)
		[]byte("checkin"),        //
		{0x03, 0x58, 0x20},       // 3 (device): bstr(32)
		deviceB[:],               //
		{0x04, 0x67},             // 4 (serial): tstr(7)
		[]byte(serialB),          //
		{0x05, 0x1a},             // 5 (time): uint32
		{0x69, 0x5b, 0x8c, 0xcc}, // 2026-01-05T10:05:00Z
		{0x06, 0x05},             // 6 (seq): 5
		{0x07, 0x58, 0x20},       // 7 (prev): bstr(32)
		prevB[:],                 //
		{0x08, 0xa4},             // 8 (body): map(4)
		{0x01, 0x18, 0x78},       //   1 (uptime): 120
		{0x02, 0x65},             //   2 (firmware): tstr(5)
		[]byte("0.9.0"),          //
		{0x03, 0xf6},             //   3 (battery): null
		{0x04, 0x00},             //   4 (reboots): 0
	}, nil)
	if got := s.Sign1.Payload(); !bytes.Equal(got, want) {
		t.Fatalf("payload\n%x\nwant\n%x", got, want)
	}
	if got := s.Sign1.RawProtected(); !bytes.Equal(got[:5], []byte{0xa2, 0x01, 0x26, 0x04, 0x48}) {
		t.Fatalf("protected %x", got)
	}
}

// TestGoldenChainVerifies runs the committed chain through VerifyChain and
// VerifyFiles, as `tumbler record verify --chain testdata/chain/*` would.
func TestGoldenChainVerifies(t *testing.T) {
	files, data := loadGoldenChain(t)
	var recs []*Signed
	for _, d := range data {
		recs = append(recs, mustParse(t, d))
	}
	if err := VerifyChain(recs); err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(readTestdata(t, "gateway_pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) ([]byte, error) {
		for i, f := range files {
			if f == name {
				return data[i], nil
			}
		}
		return nil, os.ErrNotExist
	}
	if err := VerifyFiles(pub, true, files, read); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenRender compares Diagnostic and JSON with the committed
// renderings.
func TestGoldenRender(t *testing.T) {
	for _, name := range renderGolden {
		t.Run(name, func(t *testing.T) {
			s := mustParse(t, readHex(t, filepath.Join("chain", name+".hex")))
			d, err := Diagnostic(s.Raw())
			if err != nil {
				t.Fatal(err)
			}
			if want := string(readTestdata(t, filepath.Join("render", name+".diag"))); d != want {
				t.Fatalf("Diagnostic:\n%s\nwant:\n%s", d, want)
			}
			j, err := JSON(s)
			if err != nil {
				t.Fatal(err)
			}
			if want := readTestdata(t, filepath.Join("render", name+".json")); !bytes.Equal(j, want) {
				t.Fatalf("JSON:\n%s\nwant:\n%s", j, want)
			}
		})
	}
}

// TestGoldenFilesAreHex guards the seed corpus: every chain file is hex
// of a record that parses.
func TestGoldenFilesAreHex(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "chain", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(goldenChain(t)) {
		t.Fatalf("%d files in testdata/chain, %d in goldenChain", len(files), len(goldenChain(t)))
	}
	for _, f := range files {
		data := readHex(t, strings.TrimPrefix(f, "testdata/"))
		if _, err := Parse(data); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}
