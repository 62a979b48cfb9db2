package voucher

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

func TestStatusGolden(t *testing.T) {
	tests := []struct {
		name string
		file string
		want Status
	}{
		{name: "enroll status success", file: "es-success.hex", want: Status{Version: 1, Status: true}},
		{name: "enroll status failure", file: "es-failure.hex", want: Status{
			Version: 1, Reason: "<Informative human readable error message>",
		}},
		{name: "voucher status with reason-context", file: "voucher-status.hex", want: Status{
			Version: 1, Reason: "Informative human-readable error message",
			// { 0: "Additional information" }
			ReasonContext: cbor.RawMessage(append([]byte{0xa1, 0x00, 0x76}, "Additional information"...)),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := cbrskivec.Hex(t, tc.file)
			s, err := ParseStatus(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*s, tc.want) {
				t.Fatalf("got %+v\nwant %+v", *s, tc.want)
			}
			enc, err := s.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("re-encoded\n%X\nwant\n%X", enc, data)
			}
		})
	}
}

func TestStatusStrict(t *testing.T) {
	tests := []struct {
		name string
		in   any
		raw  []byte
		want error
	}{
		{name: "version 2", in: map[string]any{"version": 2, "status": true}, want: ErrStatusVersion},
		{name: "version 0", in: map[string]any{"version": 0, "status": true}, want: ErrStatusVersion},
		{name: "version negative", in: map[string]any{"version": -1, "status": true}, want: ErrMalformed},
		{name: "version text", in: map[string]any{"version": "1", "status": true}, want: ErrMalformed},
		{name: "version missing", in: map[string]any{"status": true}, want: ErrMissingField},
		{name: "status missing", in: map[string]any{"version": 1}, want: ErrMissingField},
		{name: "status as int (OT-Registrar flags it)", in: map[string]any{"version": 1, "status": 1}, want: ErrMalformed},
		{name: "reason not text", in: map[string]any{"version": 1, "status": false, "reason": 7}, want: ErrMalformed},
		{name: "reason-context as text (OpenThread pledge)", in: map[string]any{"version": 1, "status": false, "reason": "x", "reason-context": "ctx"}, want: ErrMalformed},
		{name: "reason-context duplicate keys", raw: mustHex(t, "a3 67 76657273696f6e 01 66 737461747573 f4 6e 726561736f6e2d636f6e74657874 a2 00 00 00 01"), want: ErrMalformed},
		{name: "unknown key", in: map[string]any{"version": 1, "status": true, "colour": "red"}, want: ErrMalformed},
		{name: "integer key", in: map[any]any{"version": 1, "status": true, 3: "x"}, want: ErrMalformed},
		{name: "duplicate key", raw: mustHex(t, "a3 67 76657273696f6e 01 66 737461747573 f5 66 737461747573 f4"), want: ErrMalformed},
		{name: "not a map", in: []any{1, true}, want: ErrMalformed},
		{name: "empty", raw: []byte{}, want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.raw
			if data == nil {
				data = marshal(t, tc.in)
			}
			s, err := ParseStatus(data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseStatus = %+v, %v; want %v", s, err, tc.want)
			}
		})
	}
}

func TestStatusEncode(t *testing.T) {
	tests := []struct {
		name string
		in   Status
		want []byte
		err  error
	}{
		{name: "success", in: Status{Version: 1, Status: true}, want: cbrskivec.Hex(t, "es-success.hex")},
		{name: "failure without reason tolerated", in: Status{Version: 1}, want: mustHex(t, "a2 67 76657273696f6e 01 66 737461747573 f4")},
		{name: "version unset", in: Status{Status: true}, err: ErrStatusVersion},
		{name: "reason-context not a map", in: Status{Version: 1, ReasonContext: cbor.RawMessage{0x01}}, err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.MarshalCBOR()
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("MarshalCBOR = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("MarshalCBOR = %X, %v; want %X", got, err, tc.want)
			}
			back, err := ParseStatus(got)
			if err != nil || !reflect.DeepEqual(*back, tc.in) {
				t.Fatalf("ParseStatus = %+v, %v", back, err)
			}
		})
	}
}
