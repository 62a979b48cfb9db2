package cose

import (
	"encoding/hex"
	"strings"
	"testing"
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

// vector is one of the draft's signed examples and the certificate whose
// key signed it.
type vector struct {
	name   string
	file   string
	signer string
}

var vectors = []vector{
	{name: "pvr", file: "pvr.hex", signer: "pledge.der"},
	{name: "rvr", file: "rvr.hex", signer: "registrar.der"},
	{name: "voucher", file: "voucher.hex", signer: "masa_ca.der"},
}

// envelope builds a COSE_Sign1_Tagged message from raw parts.
func envelope(protected, unprotected, payload, sig []byte) []byte {
	return appendEnvelope(nil, protected, unprotected, payload, sig)
}
