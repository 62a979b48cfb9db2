package transfer

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func seed(f *testing.F, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	d, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d)
}

// Every parser either refuses or returns a document whose signed bytes are
// the input (nothing is re-encoded or lost).
func FuzzParse(f *testing.F) {
	for _, n := range []string{"authorization.hex", "order.hex", "claim.hex", "objection.hex", "claims-query.hex"} {
		seed(f, n)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if a, err := ParseAuthorization(data); err == nil && !bytes.Equal(a.Msg.Raw(), data) {
			t.Fatal("authorization not kept byte for byte")
		}
		if o, err := ParseOrder(data); err == nil && !bytes.Equal(o.Msg.Raw(), data) {
			t.Fatal("order not kept byte for byte")
		}
		if c, err := ParseClaim(data); err == nil && (!bytes.Equal(c.Msg.Raw(), data) || len(c.Proof) != 32) {
			t.Fatal("claim not kept byte for byte")
		}
		ParseObjection(data)
		ParseClaimsQuery(data)
	})
}

// A label that parses formats back to itself.
func FuzzLabel(f *testing.F) {
	f.Add("TB1:SN-1:00112233445566778899aabbccddeeff")
	f.Add("TB1:a:b:00112233445566778899aabbccddeeff00")
	f.Fuzz(func(t *testing.T, s string) {
		serial, secret, err := ParseLabel(s)
		if err != nil {
			return
		}
		s2, sec2, err := ParseLabel(FormatLabel(serial, secret))
		if err != nil || s2 != serial || !bytes.Equal(sec2, secret) {
			t.Fatalf("%q does not round-trip", s)
		}
	})
}
