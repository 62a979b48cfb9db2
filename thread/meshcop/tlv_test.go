package meshcop

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeStrict(t *testing.T) {
	long := bytes.Repeat([]byte{0xaa}, 300)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty payload", nil, nil},
		{"lone type byte", []byte{0x10}, ErrTruncated},
		{"value cut short", []byte{0x10, 0x01}, ErrTruncated},
		{"extended header cut short", []byte{0x11, 0xff, 0x00}, ErrTruncated},
		{"extended value cut short", []byte{0x11, 0xff, 0x00, 0x03, 0x01, 0x02}, ErrTruncated},
		{"state of 2 bytes", []byte{0x10, 0x02, 0x01, 0x01}, ErrLength},
		{"session id of 1 byte", []byte{0x0b, 0x01, 0x01}, ErrLength},
		{"joiner IID of 9 bytes", append([]byte{0x13, 0x09}, make([]byte, 9)...), ErrLength},
		{"steering data of 17 bytes", append([]byte{0x08, 0x11}, make([]byte, 17)...), ErrLength},
		{"empty steering data", []byte{0x08, 0x00}, ErrLength},
		{"commissioner ID of 65 bytes", append([]byte{0x0a, 0x41}, make([]byte, 65)...), ErrLength},
		{"KEK of 15 bytes", append([]byte{0x15, 0x0f}, make([]byte, 15)...), ErrLength},
		{"state in extended form over-long", []byte{0x10, 0xff, 0x00, 0x02, 0x01, 0x01}, ErrLength},
		{"duplicate session id", []byte{0x0b, 0x02, 0x00, 0x01, 0x0b, 0x02, 0x00, 0x02}, ErrDuplicate},
		{"unknown types may repeat", []byte{0xc8, 0x01, 0x01, 0xc8, 0x00}, nil},
		{"long extended encapsulation", append([]byte{0x11, 0xff, 0x01, 0x2c}, long...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			out, err := ts.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, tc.in) {
				t.Fatalf("round trip %x, want %x", out, tc.in)
			}
		})
	}
}

// TestDecodeBounds: a message cannot hold more than MaxTLVs TLVs, however
// small they are, so a 64 KiB payload cannot make 32768 allocations.
func TestDecodeBounds(t *testing.T) {
	in := bytes.Repeat([]byte{0xc8, 0x00}, MaxTLVs)
	if _, err := Decode(in); err != nil {
		t.Fatalf("%d TLVs: %v", MaxTLVs, err)
	}
	_, err := Decode(append(in, 0xc8, 0x00))
	if !errors.Is(err, ErrTooMany) {
		t.Fatalf("%d TLVs: %v, want ErrTooMany", MaxTLVs+1, err)
	}
	allocs := testing.AllocsPerRun(10, func() { _, _ = Decode(bytes.Repeat([]byte{0xc8, 0x00}, 32768)) })
	if allocs > 20 {
		t.Fatalf("Decode of a 32768-TLV flood made %v allocations", allocs)
	}
}

func TestEncodeForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		tlv  TLV
		want []byte
	}{
		{"short base form", TLV{Type: TypeState, Value: []byte{0x01}}, []byte{0x10, 0x01, 0x01}},
		{"NewTLV extends DTLS encapsulation as OpenThread does", NewTLV(TypeJoinerDTLSEncapsulation, []byte{0x16}),
			[]byte{0x11, 0xff, 0x00, 0x01, 0x16}},
		{"base form of an extended type is kept", TLV{Type: TypeJoinerDTLSEncapsulation, Value: []byte{0x16}},
			[]byte{0x11, 0x01, 0x16}},
		{"255 bytes force the extended form", TLV{Type: 0xc8, Value: make([]byte, 255)},
			append([]byte{0xc8, 0xff, 0x00, 0xff}, make([]byte, 255)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TLVs{tc.tlv}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("%x, want %x", got, tc.want)
			}
		})
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   TLVs
		want error
	}{
		{"over 65535 bytes", TLVs{NewTLV(TypeJoinerDTLSEncapsulation, make([]byte, 65536))}, ErrLength},
		{"bad State length", TLVs{{Type: TypeState}}, ErrLength},
		{"duplicate", TLVs{StateTLV(StateAccept), StateTLV(StateReject)}, ErrDuplicate},
		{"too many", make(TLVs, MaxTLVs+1), ErrTooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ts {
				if tc.ts[i].Type == 0 && tc.ts[i].Value == nil && tc.name == "too many" {
					tc.ts[i] = TLV{Type: 0xc8}
				}
			}
			if _, err := tc.ts.Encode(); !errors.Is(err, tc.want) {
				t.Fatalf("Encode = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestUnknownPreserved: unknown TLVs keep their place and form.
func TestUnknownPreserved(t *testing.T) {
	in := []byte{
		0xc8, 0x02, 0xaa, 0xbb, // unknown 200
		0x10, 0x01, 0x01, // State Accept
		0xc9, 0xff, 0x00, 0x01, 0xcc, // unknown 201, extended form
		0xc8, 0x00, // unknown 200 again
	}
	ts, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	ts.Set(StateTLV(StateReject))
	out, err := ts.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(in)
	want[6] = 0xff
	if !bytes.Equal(out, want) {
		t.Fatalf("%x, want %x", out, want)
	}
	if got := Type(200).String(); !strings.Contains(got, "200") {
		t.Fatalf("String %q", got)
	}
}

func TestSteeringData(t *testing.T) {
	if _, err := NewSteeringData(0); !errors.Is(err, ErrLength) {
		t.Fatalf("length 0: %v", err)
	}
	if _, err := NewSteeringData(17); !errors.Is(err, ErrLength) {
		t.Fatalf("length 17: %v", err)
	}
	a := JoinerIDFromEUI64(EUI64{0x18, 0xb4, 0x30, 0, 0, 0, 0, 1})
	b := JoinerIDFromEUI64(EUI64{0x18, 0xb4, 0x30, 0, 0, 0, 0, 2})
	all := AllowAll()
	if !all.AllowsAll() || !all.Contains(a) || all.Empty() {
		t.Fatal("AllowAll")
	}
	none, _ := NewSteeringData(1)
	if !none.Empty() || none.Contains(a) {
		t.Fatal("empty filter")
	}
	sd := SteeringFor(a)
	if !sd.Contains(a) || len(sd) != MaxSteeringLength || sd.AllowsAll() {
		t.Fatalf("SteeringFor: %v", sd)
	}
	for n := MinSteeringLength; n <= MaxSteeringLength; n++ {
		sd, _ := NewSteeringData(n)
		sd.Add(a)
		sd.Add(b)
		if !sd.Contains(a) || !sd.Contains(b) {
			t.Fatalf("length %d loses a member", n)
		}
	}
	var bad SteeringData
	bad.Add(a)
	if bad.Contains(a) || bad.AllowsAll() || !bad.Empty() {
		t.Fatal("nil filter")
	}
}

func TestPSKcInputs(t *testing.T) {
	var x [8]byte
	for _, tc := range []struct{ pass, name string }{
		{"12S", "Test Network"},
		{strings.Repeat("1", 256), "Test Network"},
		{"12SECRETPASSWORD34", "Too Long network name"},
	} {
		if _, err := PSKc(tc.pass, tc.name, x); !errors.Is(err, ErrPSKcInput) {
			t.Errorf("PSKc(%d-byte passphrase, %q) = %v, want ErrPSKcInput", len(tc.pass), tc.name, err)
		}
	}
}

func TestParseEUI64(t *testing.T) {
	for _, s := range []string{"", "18b43000000000", "18b430000000000g", "18b4300000000000ff"} {
		if _, err := ParseEUI64(s); !errors.Is(err, ErrValue) {
			t.Errorf("ParseEUI64(%q) = %v", s, err)
		}
	}
	e, err := ParseEUI64("18b4300000000002")
	if err != nil || e.String() != "18b4300000000002" {
		t.Fatalf("%v %v", e, err)
	}
}

func BenchmarkPSKc(b *testing.B) {
	for b.Loop() {
		_, _ = PSKc("12SECRETPASSWORD34", "Test Network", [8]byte{0, 1, 2, 3, 4, 5, 6, 7})
	}
}
