package cose

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/tumbler-iot/tumbler/internal/cbrskivec"
)

// BenchmarkSign signs the draft voucher's 648-byte payload.
func BenchmarkSign(b *testing.B) {
	v, err := Parse(cbrskivec.Hex(b, "voucher.hex"))
	if err != nil {
		b.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ES256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Sign(rand.Reader, p256, v.Payload(), SignOptions{KID: []byte("12345678")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EdDSA", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Sign(rand.Reader, ed, v.Payload(), SignOptions{KID: []byte("12345678")}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseVerify parses and verifies each of the draft's signed
// examples.
func BenchmarkParseVerify(b *testing.B) {
	for _, v := range vectors {
		data := cbrskivec.Hex(b, v.file)
		pub := cbrskivec.Cert(b, v.signer).PublicKey
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				m, err := Parse(data)
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Verify(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse parses the 1604-byte RVR without verifying it.
func BenchmarkParse(b *testing.B) {
	data := cbrskivec.Hex(b, "rvr.hex")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
