package voucher_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/tumbler-iot/tumbler/cose/voucher"
)

func ExampleSignRequest() {
	// The pledge's IDevID key and the registrar key it saw in the DTLS
	// handshake (both generated here).
	idevidKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	registrarKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(registrarKey.Public())
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}

	pvr := &voucher.Request{
		Assertion:              voucher.Ptr(voucher.Proximity),
		Nonce:                  nonce,
		ProximityRegistrarPubK: spki,
		SerialNumber:           "JADA123456789",
	}
	signed, err := voucher.SignRequest(rand.Reader, idevidKey, pvr, nil)
	if err != nil {
		panic(err)
	}

	// The registrar's side.
	s, err := voucher.ParseSignedRequest(signed)
	if err != nil {
		panic(err)
	}
	if err := s.Verify(idevidKey.Public()); err != nil {
		panic(err)
	}
	fmt.Printf("payload starts %x, assertion %s, serial %s\n",
		s.Sign1.Payload()[:4], *s.Request.Assertion, s.Request.SerialNumber)
	// Output: payload starts a11909c5, assertion proximity, serial JADA123456789
}

func ExampleParseSignedVoucher() {
	// The draft's voucher, signed by the MASA CA (which issued the IDevID),
	// from the repository's copy of the draft vectors.
	hexText, err := os.ReadFile("../../internal/cbrskivec/testdata/voucher.hex")
	if err != nil {
		panic(err)
	}
	data, err := hex.DecodeString(strings.Join(strings.Fields(string(hexText)), ""))
	if err != nil {
		panic(err)
	}
	masaDER, err := os.ReadFile("../../internal/cbrskivec/testdata/masa_ca.der")
	if err != nil {
		panic(err)
	}
	masa, err := x509.ParseCertificate(masaDER)
	if err != nil {
		panic(err)
	}

	s, err := voucher.ParseSignedVoucher(data)
	if err != nil {
		panic(err)
	}
	if err := s.Verify(masa.PublicKey); err != nil {
		panic(err)
	}
	v := s.Voucher
	// The pledge compares with the nonce it sent (here the voucher's own:
	// the draft's voucher and PVR come from different runs).
	err = v.Validate(voucher.PledgeCheck{SerialNumber: "JADA123456789", Nonce: v.Nonce})
	pin, _ := v.PinnedCert()
	fmt.Println(v.SerialNumber, *v.Assertion, v.CreatedOn.Format("2006-01-02T15:04:05.000Z07:00"))
	fmt.Printf("nonce %X, pinned %q, valid: %v\n", v.Nonce, pin.Subject.CommonName, err == nil)
	// Output:
	// JADA123456789 proximity 2022-12-06T20:23:30.708Z
	// nonce 57EED786AD404907, pinned "Custom-ER Global CA", valid: true
}
