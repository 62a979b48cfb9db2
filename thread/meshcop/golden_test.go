package meshcop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vectors mirrors testdata/vectors.json; testdata/README.md says where
// each vector comes from.
type vectors struct {
	PSKc []struct {
		Source      string `json:"source"`
		Passphrase  string `json:"passphrase"`
		NetworkName string `json:"network_name"`
		ExtPANID    string `json:"ext_pan_id"`
		PSKc        string `json:"pskc"`
	} `json:"pskc"`
	CRC16 []struct {
		Source, Data, CCITT, ANSI string
	} `json:"crc16"`
	JoinerID []struct {
		Source   string `json:"source"`
		EUI64    string `json:"eui64"`
		JoinerID string `json:"joiner_id"`
	} `json:"joiner_id"`
	Steering []struct {
		Source       string   `json:"source"`
		Length       int      `json:"length"`
		EUI64        []string `json:"eui64"`
		SteeringData string   `json:"steering_data"`
	} `json:"steering"`
	CMAC []struct {
		Source, Key, Msg, MAC string
	} `json:"cmac"`
	CMACPRF []struct {
		Source, Key, Msg, PRF string
	} `json:"cmac_prf"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func readHex(t testing.TB, name string) []byte {
	t.Helper()
	s, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// TestGoldenTLVs decodes OpenThread's TLV vectors and re-encodes them to
// the same bytes (tests/unit/test_dataset.cpp).
func TestGoldenTLVs(t *testing.T) {
	for _, tc := range []struct {
		file  string
		types []Type
	}{
		{"tlv-dataset-active.hex", []Type{TypeActiveTimestamp, TypeChannel, TypeChannelMask, TypeExtendedPANID,
			TypeMeshLocalPrefix, TypeNetworkKey, TypeNetworkName, TypePANID, TypePSKc, TypeSecurityPolicy}},
		{"tlv-pan-id.hex", []Type{TypePANID}},
		{"tlv-ext-pan-id.hex", []Type{TypeExtendedPANID}},
		{"tlv-mesh-local-prefix.hex", []Type{TypeMeshLocalPrefix}},
		{"tlv-network-name-16.hex", []Type{TypeNetworkName}},
		{"tlv-network-name-empty.hex", []Type{TypeNetworkName}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := readHex(t, tc.file)
			ts, err := Decode(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != len(tc.types) {
				t.Fatalf("%d TLVs, want %d", len(ts), len(tc.types))
			}
			for i, want := range tc.types {
				if ts[i].Type != want {
					t.Errorf("TLV %d is %v, want %v", i, ts[i].Type, want)
				}
			}
			out, err := ts.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("re-encoded\n%x\nwant\n%x", out, in)
			}
		})
	}
	t.Run("values", func(t *testing.T) {
		ts, err := Decode(readHex(t, "tlv-dataset-active.hex"))
		if err != nil {
			t.Fatal(err)
		}
		pan, err := ts.Uint16(TypePANID)
		if err != nil || pan != 0xface {
			t.Fatalf("PAN ID %#x, %v; want 0xface", pan, err)
		}
		name, _ := ts.Bytes(TypeNetworkName)
		if string(name) != "OpenThread-aac3" {
			t.Fatalf("network name %q", name)
		}
		key, _ := ts.Bytes(TypeNetworkKey)
		if hex.EncodeToString(key) != "eaf9149fdc7378770698d59180221958" {
			t.Fatalf("network key %x", key)
		}
	})
}

// TestGoldenTLVErrors are OpenThread's invalid datasets
// (tests/unit/test_dataset.cpp): truncations of the golden dataset, a
// repeated Channel TLV, an over-long Network Name.
func TestGoldenTLVErrors(t *testing.T) {
	active := readHex(t, "tlv-dataset-active.hex")
	dup := readHex(t, "tlv-err-duplicate-channel.hex")
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"dataset first byte only", active[:1], ErrTruncated},
		{"dataset without last byte", active[:len(active)-1], ErrTruncated},
		{"channel twice", dup, ErrDuplicate},
		{"channel and a half", dup[:len(dup)/2+1], ErrTruncated},
		{"network name of 17 bytes", readHex(t, "tlv-err-network-name-17.hex"), ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
	// OpenThread accepts one Channel TLV.
	if _, err := Decode(dup[:len(dup)/2]); err != nil {
		t.Fatal(err)
	}
}

func TestGoldenPSKc(t *testing.T) {
	for _, v := range loadVectors(t).PSKc {
		t.Run(v.Source, func(t *testing.T) {
			got, err := PSKc(v.Passphrase, v.NetworkName, [8]byte(unhex(t, v.ExtPANID)))
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got[:]) != v.PSKc {
				t.Fatalf("PSKc %x, want %s", got, v.PSKc)
			}
		})
	}
}

func TestGoldenCRC16(t *testing.T) {
	for _, v := range loadVectors(t).CRC16 {
		data := unhex(t, v.Data)
		for _, c := range []struct {
			poly uint16
			want string
		}{{polyCCITT, v.CCITT}, {polyANSI, v.ANSI}} {
			want, err := strconv.ParseUint(c.want, 16, 16)
			if err != nil {
				t.Fatal(err)
			}
			if got := crc16(c.poly, data); got != uint16(want) {
				t.Errorf("%s: crc16(%#04x, %x) = %#04x, want %#04x", v.Source, c.poly, data, got, want)
			}
		}
	}
}

func TestGoldenJoinerID(t *testing.T) {
	for _, v := range loadVectors(t).JoinerID {
		eui, err := ParseEUI64(v.EUI64)
		if err != nil {
			t.Fatal(err)
		}
		id := JoinerIDFromEUI64(eui)
		if id.String() != v.JoinerID {
			t.Fatalf("%s: joiner ID %v, want %s", v.Source, id, v.JoinerID)
		}
		if JoinerIDFromIID(id.IID()) != id {
			t.Fatal("IID round trip")
		}
	}
}

func TestGoldenSteering(t *testing.T) {
	for _, v := range loadVectors(t).Steering {
		sd, err := NewSteeringData(v.Length)
		if err != nil {
			t.Fatal(err)
		}
		var ids []JoinerID
		for _, s := range v.EUI64 {
			eui, err := ParseEUI64(s)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, JoinerIDFromEUI64(eui))
			sd.Add(ids[len(ids)-1])
		}
		if sd.String() != v.SteeringData {
			t.Fatalf("%s: steering %v, want %s", v.Source, sd, v.SteeringData)
		}
		for _, id := range ids {
			if !sd.Contains(id) {
				t.Fatalf("filter does not contain %v", id)
			}
		}
	}
}

func TestGoldenCMAC(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.CMAC {
		m, err := newCMAC(unhex(t, c.Key))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.sum(unhex(t, c.Msg)); hex.EncodeToString(got[:]) != c.MAC {
			t.Errorf("%s: %x, want %s", c.Source, got, c.MAC)
		}
	}
	for _, c := range v.CMACPRF {
		m, err := newCMACPRF(unhex(t, c.Key))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.sum(unhex(t, c.Msg)); hex.EncodeToString(got[:]) != c.PRF {
			t.Errorf("%s: %x, want %s", c.Source, got, c.PRF)
		}
	}
}
