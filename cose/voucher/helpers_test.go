package voucher

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose"
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
	if blk.Type == "EC PRIVATE KEY" {
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(crypto.Signer)
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

// Values of the draft vectors (spec/cbrski.md §5).
const (
	vectorSerial = "JADA123456789"
	// registrarSPKI is the registrar's SubjectPublicKeyInfo (§5.1).
	registrarSPKI = "3059301306072A8648CE3D020106082A8648CE3D030107034200042030855BE846910B" +
		"3ECB15CAF8572D3EB565BDC654A15EFAF6EDEBAA8B9E1608C5C910C93A20868FC8504D370F1B26FA9759F67983BB78" +
		"863EDA9ACBEA5124F6"
	pvrNonce     = "23BFBBC9C2BCF213"
	voucherNonce = "57EED786AD404907"
	idevidIssuer = "041830168014CB8D98CA74C51B58DDE7ACEF869A9443A8D666A6"
)

// vectorTime is a moment at which all the draft's 2022-12-06 certificates
// are valid.
var vectorTime = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
