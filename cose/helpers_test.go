package cose

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readHex reads an upper-case hex file from testdata, ignoring white space.
func readHex(tb testing.TB, name string) []byte {
	tb.Helper()
	s, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(s)), ""))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

// mustHex decodes a hex literal, ignoring white space.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// readCert parses a DER certificate from testdata.
func readCert(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	der, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return c
}

// readKey parses a SEC 1 or PKCS #8 PEM private key from testdata.
func readKey(tb testing.TB, name string) crypto.Signer {
	tb.Helper()
	p, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(p)
	if blk == nil {
		tb.Fatalf("%s: no PEM block", name)
	}
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		return k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		return k.(crypto.Signer)
	}
	tb.Fatalf("%s: PEM type %q", name, blk.Type)
	return nil
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
