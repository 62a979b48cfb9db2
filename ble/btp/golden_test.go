package btp_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// Vector files in testdata/; see testdata/SOURCES.md for their origin.

type segmentVector struct {
	Name    string `json:"name"`
	Source  string `json:"source"`
	Hex     string `json:"hex"`
	Flags   uint8  `json:"flags"`
	Ack     uint8  `json:"ack"`
	Seq     uint8  `json:"seq"`
	Length  uint16 `json:"length"`
	Payload string `json:"payload"`
	Error   string `json:"error"`
}

type requestVector struct {
	Name     string   `json:"name"`
	Source   string   `json:"source"`
	Hex      string   `json:"hex"`
	Versions [8]uint8 `json:"versions"`
	ATTMTU   uint16   `json:"att_mtu"`
	Window   uint8    `json:"window"`
	Error    string   `json:"error"`
}

type responseVector struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Hex         string `json:"hex"`
	Version     uint8  `json:"version"`
	SegmentSize uint16 `json:"segment_size"`
	Window      uint8  `json:"window"`
}

var vectorErrors = map[string]error{
	"malformed": btp.ErrMalformed,
	"version":   btp.ErrVersion,
}

func loadJSON(tb testing.TB, name string, v any) {
	tb.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

func segmentVectors(tb testing.TB) []segmentVector {
	var f struct{ Vectors []segmentVector }
	loadJSON(tb, "segments.json", &f)
	return f.Vectors
}

func handshakeVectors(tb testing.TB) ([]requestVector, []responseVector) {
	var f struct {
		Requests  []requestVector
		Responses []responseVector
	}
	loadJSON(tb, "handshake.json", &f)
	return f.Requests, f.Responses
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func TestSegmentVectors(t *testing.T) {
	for _, v := range segmentVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			raw := unhex(t, v.Hex)
			seg, err := btp.DecodeSegment(raw)
			if v.Error != "" {
				want := vectorErrors[v.Error]
				if want == nil {
					t.Fatalf("unknown error kind %q", v.Error)
				}
				wantErr(t, err, want)
				return
			}
			if err != nil {
				t.Fatalf("decode %s (%s): %v", v.Hex, v.Source, err)
			}
			if uint8(seg.Flags) != v.Flags || seg.Seq != v.Seq || seg.Length != v.Length || seg.Ack != v.Ack {
				t.Fatalf("decoded %+v, want flags %#x ack %d seq %d length %d", seg, v.Flags, v.Ack, v.Seq, v.Length)
			}
			if !bytes.Equal(seg.Payload, unhex(t, v.Payload)) {
				t.Fatalf("payload %x, want %s", seg.Payload, v.Payload)
			}
			if got := seg.HeaderLen() + len(seg.Payload); got != len(raw) {
				t.Fatalf("HeaderLen+payload = %d, want %d", got, len(raw))
			}
			// Encoding the expected fields reproduces the bytes.
			want := btp.Segment{Flags: btp.Flags(v.Flags), Ack: v.Ack, Seq: v.Seq, Length: v.Length, Payload: unhex(t, v.Payload)}
			enc, err := want.MarshalBinary()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(enc, raw) {
				t.Fatalf("encoded %x, want %x", enc, raw)
			}
		})
	}
}

func TestHandshakeVectors(t *testing.T) {
	reqs, resps := handshakeVectors(t)
	for _, v := range reqs {
		t.Run("request/"+v.Name, func(t *testing.T) {
			raw := unhex(t, v.Hex)
			r, err := btp.DecodeHandshakeRequest(raw)
			if v.Error != "" {
				wantErr(t, err, vectorErrors[v.Error])
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := btp.HandshakeRequest{Versions: v.Versions, ATTMTU: v.ATTMTU, Window: v.Window}
			if r != want {
				t.Fatalf("decoded %+v, want %+v", r, want)
			}
			if !r.Supports(btp.Version) {
				t.Fatalf("%+v does not support version %d", r, btp.Version)
			}
			enc, err := want.MarshalBinary()
			if err != nil || !bytes.Equal(enc, raw) {
				t.Fatalf("encoded %x, %v; want %x", enc, err, raw)
			}
		})
	}
	for _, v := range resps {
		t.Run("response/"+v.Name, func(t *testing.T) {
			raw := unhex(t, v.Hex)
			r, err := btp.DecodeHandshakeResponse(raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := btp.HandshakeResponse{Version: v.Version, SegmentSize: v.SegmentSize, Window: v.Window}
			if r != want {
				t.Fatalf("decoded %+v, want %+v", r, want)
			}
			enc, err := want.MarshalBinary()
			if err != nil || !bytes.Equal(enc, raw) {
				t.Fatalf("encoded %x, %v; want %x", enc, err, raw)
			}
		})
	}
}

// The matter.js vector with versions {4,5,6} supports each of them.
func TestHandshakeRequestVersionSet(t *testing.T) {
	r, err := btp.DecodeHandshakeRequest(unhex(t, "656c04560000b90006"))
	if err != nil {
		t.Fatal(err)
	}
	for v := uint8(0); v < 16; v++ {
		want := v == 4 || v == 5 || v == 6
		if r.Supports(v) != want {
			t.Errorf("Supports(%d) = %v", v, !want)
		}
	}
}

func TestDecodeSegmentErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"flags only", "05"},
		{"ack without sequence", "08 01"},
		{"begin without length", "05 00 01"},
		{"reserved bit 0x10", "15 00 01 00 aa"},
		{"reserved bit 0x80", "84 00 aa"},
		{"handshake flag", "45 00 01 00 aa"},
		{"management flag", "24 00 aa"},
		{"begin and continue", "03 00 01 00 aa"},
		{"no data, no ack", "00 00"},
		{"ack with payload", "08 00 00 aa"},
		{"empty continue", "02 05"},
		{"empty end", "04 05"},
		{"single with extra octet", "05 00 01 00 aa bb"},
		{"single with missing octet", "05 00 02 00 aa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := btp.DecodeSegment(unhexSpaced(t, tc.hex))
			wantErr(t, err, btp.ErrMalformed)
		})
	}
}

func TestDecodeHandshakeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		request   bool
		want      error
	}{
		{"request short", "65 6c 04 00 00 00 b9 00", true, btp.ErrMalformed},
		{"request long", "65 6c 04 00 00 00 b9 00 06 00", true, btp.ErrMalformed},
		{"response is not a request", "65 6c 04 00 01 06", true, btp.ErrMalformed},
		{"response short", "65 6c 04 00 01", false, btp.ErrMalformed},
		{"response bad flags", "64 6c 04 00 01 06", false, btp.ErrMalformed},
		{"response bad opcode", "65 6d 04 00 01 06", false, btp.ErrMalformed},
		{"response reserved version bits", "65 6c 14 00 01 06", false, btp.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.request {
				_, err = btp.DecodeHandshakeRequest(unhexSpaced(t, tc.hex))
			} else {
				_, err = btp.DecodeHandshakeResponse(unhexSpaced(t, tc.hex))
			}
			wantErr(t, err, tc.want)
		})
	}
}

func TestEncodeRefusesWhatDecodeRefuses(t *testing.T) {
	for name, s := range map[string]btp.Segment{
		"begin and continue":   {Flags: btp.FlagBegin | btp.FlagContinue, Length: 1, Payload: []byte{1}},
		"ack with payload":     {Flags: btp.FlagAck, Payload: []byte{1}},
		"handshake flag":       {Flags: btp.FlagHandshake | btp.FlagEnd, Payload: []byte{1}},
		"length disagrees":     {Flags: btp.FlagBegin | btp.FlagEnd, Length: 3, Payload: []byte{1}},
		"nothing":              {},
		"empty continue":       {Flags: btp.FlagContinue},
		"begin carries it all": {Flags: btp.FlagBegin, Length: 1, Payload: []byte{1}},
	} {
		if _, err := s.MarshalBinary(); !errors.Is(err, btp.ErrMalformed) {
			t.Errorf("%s: MarshalBinary error %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (btp.HandshakeRequest{}).MarshalBinary(); !errors.Is(err, btp.ErrVersion) {
		t.Errorf("request without versions: %v", err)
	}
	if _, err := (btp.HandshakeRequest{Versions: [8]uint8{16}}).MarshalBinary(); !errors.Is(err, btp.ErrMalformed) {
		t.Errorf("version 16: %v", err)
	}
	if _, err := (btp.HandshakeResponse{Version: 16}).MarshalBinary(); !errors.Is(err, btp.ErrMalformed) {
		t.Errorf("response version 16: %v", err)
	}
}

func unhexSpaced(tb testing.TB, s string) []byte {
	tb.Helper()
	return unhex(tb, string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
}
