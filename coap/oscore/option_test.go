package oscore

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodeOptionValueErrors(t *testing.T) {
	tests := []struct {
		name  string
		value []byte
	}{
		{"reserved bit 7", []byte{0x89, 0x14}},
		{"reserved bit 6", []byte{0x49, 0x14}},
		{"reserved bit 5", []byte{0x29, 0x14}},
		{"Partial IV length 6", []byte{0x0e, 1, 2, 3, 4, 5, 6}},
		{"Partial IV length 7", []byte{0x0f, 1, 2, 3, 4, 5, 6, 7}},
		{"Partial IV truncated", []byte{0x0a, 0x14}},
		{"Partial IV with leading zero", []byte{0x0a, 0x00, 0x14}},
		{"kid context length missing", []byte{0x19, 0x14}},
		{"kid context truncated", []byte{0x19, 0x14, 0x08, 0x37}},
		{"trailing bytes without kid flag", []byte{0x01, 0x14, 0x25}},
		{"all flags zero, non-empty", []byte{0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeOptionValue(tt.value); !errors.Is(err, ErrBadOption) {
				t.Errorf("DecodeOptionValue(%x) error = %v, want ErrBadOption", tt.value, err)
			}
		})
	}
}

func TestOptionValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    OptionValue
		want []byte
	}{
		{"empty", OptionValue{}, nil},
		{"kid only, empty kid", OptionValue{KID: []byte{}, HasKID: true}, []byte{0x08}},
		{"5-byte PIV and 7-byte kid", OptionValue{PartialIV: []byte{1, 2, 3, 4, 5}, KID: []byte{1, 2, 3, 4, 5, 6, 7}, HasKID: true},
			[]byte{0x0d, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 7}},
		{"empty kid context", OptionValue{PartialIV: []byte{0}, HasKIDContext: true, KIDContext: []byte{}, HasKID: true},
			[]byte{0x19, 0x00, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.v.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tt.want) {
				t.Fatalf("Encode = %x, want %x", b, tt.want)
			}
			back, err := DecodeOptionValue(b)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(tt.v) {
				t.Errorf("round trip = %+v, want %+v", back, tt.v)
			}
		})
	}
}

func TestEncodeOptionValueErrors(t *testing.T) {
	tests := []struct {
		name string
		v    OptionValue
	}{
		{"PIV of 6 bytes", OptionValue{PartialIV: []byte{1, 2, 3, 4, 5, 6}}},
		{"PIV with leading zero", OptionValue{PartialIV: []byte{0, 1}}},
		{"kid context of 256 bytes", OptionValue{HasKIDContext: true, KIDContext: make([]byte, 256)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.v.Encode(); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("Encode error = %v, want ErrInvalidMessage", err)
			}
		})
	}
}
