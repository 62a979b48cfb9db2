package oscore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestCBORAgainstLibrary checks the hand-appended CBOR against
// fxamacker/cbor in Core Deterministic mode.
func TestCBORAgainstLibrary(t *testing.T) {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte{0xab}, 300)
	tests := []struct {
		name   string
		id     []byte
		idc    []byte
		hasIDC bool
	}{
		{"no ID Context", []byte{1}, nil, false},
		{"empty ID Context", []byte{}, []byte{}, true},
		{"long ID Context", []byte{1, 2, 3, 4, 5, 6, 7}, long, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var idc any
			if tt.hasIDC {
				idc = tt.idc
			}
			want, err := em.Marshal([]any{tt.id, idc, 10, "Key", 16})
			if err != nil {
				t.Fatal(err)
			}
			if got := hkdfInfo(tt.id, tt.idc, tt.hasIDC, AESCCM16_64_128, "Key", 16); !bytes.Equal(got, want) {
				t.Errorf("info = %x, want %x", got, want)
			}
			arr, err := em.Marshal([]any{1, []any{10}, tt.id, []byte{0x12, 0x34}, []byte{}})
			if err != nil {
				t.Fatal(err)
			}
			want, err = em.Marshal([]any{"Encrypt0", []byte{}, arr})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendAAD(nil, AESCCM16_64_128, tt.id, []byte{0x12, 0x34}); !bytes.Equal(got, want) {
				t.Errorf("AAD = %x, want %x", got, want)
			}
		})
	}
	for _, v := range []int64{0, 23, 24, 255, 256, 65535, 65536, 1 << 32, -1, -24, -25, -1000} {
		want, _ := em.Marshal(v)
		if got := appendInt(nil, v); !bytes.Equal(got, want) {
			t.Errorf("appendInt(%d) = %x, want %x", v, got, want)
		}
	}
}

func TestPartialIVEncoding(t *testing.T) {
	tests := []struct {
		n    uint64
		want []byte
	}{
		{0, []byte{0}},
		{20, []byte{0x14}},
		{255, []byte{0xff}},
		{256, []byte{1, 0}},
		{1<<40 - 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		var buf [maxPIVLen]byte
		got := encodePIV(&buf, tt.n)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("encodePIV(%d) = %x, want %x", tt.n, got, tt.want)
		}
		if decodePIV(got) != tt.n {
			t.Errorf("decodePIV(%x) = %d", got, decodePIV(got))
		}
	}
}

func TestParsePlaintext(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		code    codes.Code
		opts    message.Options
		payload []byte
	}{
		{"code only", []byte{0x01}, codes.GET, nil, nil},
		{"Uri-Path", []byte{0x01, 0xb3, 't', 'v', '1'}, codes.GET, message.Options{{ID: 11, Value: []byte("tv1")}}, nil},
		{"payload", []byte{0x45, 0xff, 'h', 'i'}, codes.Content, nil, []byte("hi")},
		{"extended delta 13", []byte{0x45, 0xd0, 0xef}, codes.Content, message.Options{{ID: 252, Value: []byte{}}}, nil},
		{"extended delta 14", []byte{0x02, 0xe0, 0x00, 0x17}, codes.POST, message.Options{{ID: 292, Value: []byte{}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, opts, payload, err := parsePlaintext(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !bytes.Equal(payload, tt.payload) || len(opts) != len(tt.opts) {
				t.Fatalf("got %v %v %x", code, opts, payload)
			}
			for i := range opts {
				if opts[i].ID != tt.opts[i].ID || !bytes.Equal(opts[i].Value, tt.opts[i].Value) {
					t.Errorf("option %d = %v, want %v", i, opts[i], tt.opts[i])
				}
			}
			back, err := appendPlaintext(nil, code, opts, payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tt.in) {
				t.Errorf("re-encoded %x, want %x", back, tt.in)
			}
		})
	}
}

func TestParsePlaintextErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"marker without payload", []byte{0x01, 0xff}},
		{"delta nibble 15", []byte{0x01, 0xf1, 0x00}},
		{"length nibble 15", []byte{0x01, 0x1f}},
		{"truncated value", []byte{0x01, 0xb3, 't'}},
		{"truncated extended delta", []byte{0x01, 0xd0}},
		{"truncated extended length", []byte{0x01, 0x1e, 0x00}},
		{"option number 0", []byte{0x01, 0x00}},
		{"option number above 65535", []byte{0x01, 0xe0, 0xff, 0xff, 0xe0, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := parsePlaintext(tt.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("parsePlaintext(%x) error = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}
