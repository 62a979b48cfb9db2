package record

import (
	"errors"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// TestParseCheckInRequestGolden maps the committed device payloads
// (testdata/checkin, Tumbler's own) to bodies.
func TestParseCheckInRequestGolden(t *testing.T) {
	tests := []struct {
		file string
		want *CheckInBody
	}{
		{file: "minimal.hex", want: &CheckInBody{Uptime: 3600, Firmware: "1.0.0"}},
		{file: "extra.hex", want: &CheckInBody{
			Uptime: 86400, Firmware: "2.3.1", Battery: ptr(uint8(55)), Reboots: 3,
			Extra: Body{
				5: {0x62, 'o', 'k'},   // "ok"
				7: {0x82, 0x01, 0x02}, // [1, 2]
			},
		}},
		{file: "noncanonical.hex", want: &CheckInBody{
			Uptime: 3600, Firmware: "x",
			Extra: Body{6: {0xf9, 0x3e, 0x00}}, // 1.5, shortest float
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseCheckInRequest(readHex(t, "checkin/"+tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			// Recorded, the request becomes a checkin record body that keeps
			// the device's keys.
			r := baseRecord()
			if err := r.SetBody(got); err != nil {
				t.Fatal(err)
			}
			for k := range got.Extra {
				if !reflect.DeepEqual(r.Body[k], got.Extra[k]) {
					t.Fatalf("key %d not kept", k)
				}
			}
		})
	}
}

// TestParseCheckInRequestErrors checks the refusals.
func TestParseCheckInRequestErrors(t *testing.T) {
	enc := func(v any) []byte {
		b, err := cose.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		payload []byte
		want    []error
	}{
		{name: "empty", payload: nil, want: []error{ErrBody, ErrMalformed}},
		{name: "not a map", payload: enc([]any{1}), want: []error{ErrBody}},
		{name: "missing uptime", payload: enc(map[int]any{2: "x", 4: 0}), want: []error{ErrBody}},
		{name: "missing reboots", payload: enc(map[int]any{1: 1, 2: "x"}), want: []error{ErrBody}},
		{name: "missing firmware", payload: enc(map[int]any{1: 1, 4: 0}), want: []error{ErrBody}},
		{name: "negative key", payload: enc(map[int]any{1: 1, 2: "x", 4: 0, -1: 5}), want: []error{ErrBody}},
		{name: "text key", payload: enc(map[any]any{1: 1, 2: "x", 4: 0, "5": 5}), want: []error{ErrBody}},
		{name: "battery 101", payload: enc(map[int]any{1: 1, 2: "x", 3: 101, 4: 0}), want: []error{ErrBody}},
		{name: "battery negative", payload: enc(map[int]any{1: 1, 2: "x", 3: -1, 4: 0}), want: []error{ErrBody}},
		{name: "uptime negative", payload: enc(map[int]any{1: -1, 2: "x", 4: 0}), want: []error{ErrBody}},
		{name: "uptime float", payload: enc(map[int]any{1: 1.5, 2: "x", 4: 0}), want: []error{ErrBody}},
		{name: "firmware bytes", payload: enc(map[int]any{1: 1, 2: []byte("x"), 4: 0}), want: []error{ErrBody}},
		{name: "duplicate key", payload: []byte{0xa4, 0x01, 0x01, 0x02, 0x60, 0x04, 0x00, 0x01, 0x02}, want: []error{ErrBody, ErrMalformed}},
		{name: "duplicate after canonicalization", payload: []byte{0xa4, 0x01, 0x01, 0x02, 0x60, 0x04, 0x00, 0x18, 0x01, 0x02}, want: []error{ErrBody, ErrMalformed}},
		{name: "indefinite map", payload: []byte{0xbf, 0x01, 0x01, 0xff}, want: []error{ErrBody, ErrMalformed}},
		{name: "trailing bytes", payload: append(enc(map[int]any{1: 1, 2: "x", 4: 0}), 0x00), want: []error{ErrBody, ErrMalformed}},
		{name: "too large", payload: make([]byte, cose.MaxMessageSize+1), want: []error{ErrBody, ErrMalformed, cose.ErrTooLarge}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCheckInRequest(tc.payload)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("got %v, want %v", err, w)
				}
			}
		})
	}
}

// TestCheckInNoCollision checks that the gateway's keys cannot be set by
// the device and the device's unknown keys cannot shadow defined ones.
func TestCheckInNoCollision(t *testing.T) {
	body := &CheckInBody{
		Uptime: 1, Firmware: "f", Reboots: 1,
		OSCORESeq: ptr(uint64(9)), NextDue: t0,
		Extra: Body{0: cbor.RawMessage{0x00}, 5: cbor.RawMessage{0x05}, 6: cbor.RawMessage{0x06}},
	}
	r := baseRecord()
	if err := r.SetBody(body); err != nil {
		t.Fatal(err)
	}
	want := []int64{-2, -1, 0, 1, 2, 3, 4, 5, 6}
	if got := sortedKeys(r.Body); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}
