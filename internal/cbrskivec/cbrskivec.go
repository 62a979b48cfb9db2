// Package cbrskivec holds the constrained-voucher draft's signed examples
// (keys, certificates, PVR, RVR, voucher, status telemetry) for the tests
// of cose and cose/voucher: one copy, with its provenance in
// testdata/README.md, read through helpers that fail the test on error.
package cbrskivec

import (
	"crypto"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"
)

//go:embed testdata
var files embed.FS

// Values of the draft vectors (spec/cbrski.md §5).
const (
	Serial = "JADA123456789"
	// RegistrarSPKI is the registrar's SubjectPublicKeyInfo (§5.1), hex.
	RegistrarSPKI = "3059301306072A8648CE3D020106082A8648CE3D030107034200042030855BE846910B" +
		"3ECB15CAF8572D3EB565BDC654A15EFAF6EDEBAA8B9E1608C5C910C93A20868FC8504D370F1B26FA9759F67983BB78" +
		"863EDA9ACBEA5124F6"
	PVRNonce     = "23BFBBC9C2BCF213"
	VoucherNonce = "57EED786AD404907"
	// IDevIDIssuer is the pledge IDevID's AKI extension value, hex.
	IDevIDIssuer = "041830168014CB8D98CA74C51B58DDE7ACEF869A9443A8D666A6"
)

// Time is a moment at which all the draft's 2022-12-06 certificates are
// valid.
var Time = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)

func read(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := files.ReadFile(path.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Hex reads an upper-case hex file, ignoring white space.
func Hex(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(read(tb, name))), ""))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

// HexFiles lists the names of every .hex file, for seeding fuzz targets.
func HexFiles(tb testing.TB) []string {
	tb.Helper()
	names, err := fs.Glob(files, "testdata/*.hex")
	if err != nil || len(names) == 0 {
		tb.Fatalf("no hex vectors: %v", err)
	}
	for i, n := range names {
		names[i] = path.Base(n)
	}
	return names
}

// Cert parses a DER certificate.
func Cert(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(read(tb, name))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return c
}

// Key parses a SEC 1 or PKCS #8 PEM private key.
func Key(tb testing.TB, name string) crypto.Signer {
	tb.Helper()
	blk, _ := pem.Decode(read(tb, name))
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
		s, ok := k.(crypto.Signer)
		if !ok {
			tb.Fatalf("%s: %T is not a signer", name, k)
		}
		return s
	}
	tb.Fatalf("%s: PEM type %q", name, blk.Type)
	return nil
}
