package record

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tumbler-iot/tumbler/cose"
)

// TestDiagnosticNonRecord renders COSE_Sign1 messages that are not records:
// the envelope is shown whatever the payload is.
func TestDiagnosticNonRecord(t *testing.T) {
	key := gatewayKey(t)
	tests := []struct {
		name    string
		payload []byte
		opts    cose.SignOptions
		want    []string
	}{
		{name: "array payload", payload: []byte{0x82, 0x01, 0x02}, want: []string{
			"/ protected / <<{1: -7}>>", "/ payload / <<[1, 2]>>",
		}},
		{name: "text-keyed map payload", payload: []byte{0xa1, 0x61, 'a', 0x01}, want: []string{
			"/ payload / <<{\n    \"a\": 1\n  }>>",
		}},
		{name: "payload not CBOR", payload: []byte("hello"), want: []string{"/ payload / h'68656c6c6f'"}},
		{name: "empty payload", payload: []byte{}, want: []string{"/ payload / h''"}},
		{name: "unprotected x5bag", payload: []byte{0xa0}, opts: cose.SignOptions{X5Bag: [][]byte{{0x30, 0x00}}}, want: []string{
			"/ unprotected / {32: h'3000'}", "/ payload / <<{}>>",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := cose.Sign(rand.Reader, key, tc.payload, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Diagnostic(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(d, w) {
					t.Fatalf("%q not in\n%s", w, d)
				}
			}
			if !strings.HasPrefix(d, "18([\n") || !strings.HasSuffix(d, "\n])\n") {
				t.Fatalf("envelope not rendered:\n%s", d)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x01}, {0x84, 0x40, 0xa0, 0x40, 0x40}} {
		if _, err := Diagnostic(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: got %v, want ErrMalformed", bad, err)
		}
	}
}

// TestJSONValues checks the CBOR-to-JSON mapping of body values.
func TestJSONValues(t *testing.T) {
	// A check-in: the device's extra keys (0, 5 and above) may hold any
	// CBOR value, which is what the JSON view must render.
	r := baseRecord()
	r.Type = TypeCheckIn
	r.Body = Body{
		1:  mustHex(t, "01"),
		2:  mustHex(t, "60"),
		3:  mustHex(t, "f6"),
		4:  mustHex(t, "00"),
		5:  mustHex(t, "1bffffffffffffffff"),     // 2^64-1
		6:  mustHex(t, "3bffffffffffffffff"),     // -2^64
		7:  mustHex(t, "20"),                     // -1
		8:  mustHex(t, "43010203"),               // h'010203'
		9:  mustHex(t, "6568656c6c6f"),           // "hello"
		10: mustHex(t, "c11a5f5e1000"),           // 1(1600000000)
		11: mustHex(t, "f97e00"),                 // NaN
		12: mustHex(t, "f97c00"),                 // Infinity
		13: mustHex(t, "f9fc00"),                 // -Infinity
		14: mustHex(t, "f93e00"),                 // 1.5
		15: mustHex(t, "84f4f5f6f7"),             // [false, true, null, undefined]
		16: mustHex(t, "f0"),                     // simple(16)
		17: mustHex(t, "a30161614162f4f4820102"), // {1: "a", h'62': false, false: [1, 2]}
		18: mustHex(t, "fb3e7ad7f29abcaf48"),     // 1e-7
		19: mustHex(t, "a0"),                     // {}
		20: mustHex(t, "6722e282ac3c263e"),       // "\"€<&>": quote escaped, no HTML escaping
		0:  mustHex(t, "a2616201616102"),         // {"b": 1, "a": 2}: order kept
	}
	s := mustParse(t, mustSign(t, gatewayKey(t), r))
	out, err := JSON(s)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Body json.RawMessage `json:"body"`
		Prev *string         `json:"prev"`
		Alg  string          `json:"alg"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got bytes.Buffer
	if err := json.Compact(&got, v.Body); err != nil {
		t.Fatal(err)
	}
	want := `{"0":{"a":2,"b":1},"1":1,"2":"","3":null,"4":0,"5":18446744073709551615,"6":-18446744073709551616,"7":-1,` +
		`"8":"010203","9":"hello","10":{"tag":1,"value":1600000000},"11":"NaN","12":"Infinity",` +
		`"13":"-Infinity","14":1.5,"15":[false,true,null,"undefined"],"16":"simple(16)",` +
		`"17":{"1":"a","h'62'":false,"false":[1,2]},"18":1e-07,"19":{},"20":"\"€<&>"}`
	if got.String() != want {
		t.Fatalf("body\n%s\nwant\n%s", got.String(), want)
	}
	if v.Prev != nil || v.Alg != "ES256" {
		t.Fatalf("prev %v alg %q", v.Prev, v.Alg)
	}
	if _, err := JSON(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("JSON(nil): %v", err)
	}
}
