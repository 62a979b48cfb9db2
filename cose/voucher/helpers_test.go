package voucher

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose"
)

// mustHex decodes a hex literal, ignoring white space.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mustDate parses an RFC 3339 time.
func mustDate(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t.UTC()
}

// marshal encodes v deterministically or fails the test.
func marshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := cose.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
