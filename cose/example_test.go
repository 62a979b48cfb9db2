package cose_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	"github.com/tumbler-iot/tumbler/cose"
)

func ExampleSign() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	kid, err := cose.KeyID(key.Public())
	if err != nil {
		panic(err)
	}
	payload, err := cose.Marshal(map[int]any{1: 1, 2: "checkin"})
	if err != nil {
		panic(err)
	}
	msg, err := cose.Sign(rand.Reader, key, payload, cose.SignOptions{KID: kid})
	if err != nil {
		panic(err)
	}

	m, err := cose.Parse(msg)
	if err != nil {
		panic(err)
	}
	if err := m.Verify(key.Public()); err != nil {
		panic(err)
	}
	fmt.Printf("alg %d, kid is %d bytes, payload %x\n", m.Algorithm(), len(m.KID()), m.Payload())
	// Output: alg -7, kid is 8 bytes, payload a201010267636865636b696e
}

func ExampleSign1_StripUnprotected() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	msg, err := cose.Sign(rand.Reader, key, []byte{0xa0}, cose.SignOptions{X5Bag: [][]byte{{0x30, 0x00}}})
	if err != nil {
		panic(err)
	}
	m, err := cose.Parse(msg)
	if err != nil {
		panic(err)
	}
	stripped, err := m.StripUnprotected()
	if err != nil {
		panic(err)
	}
	s, err := cose.Parse(stripped)
	if err != nil {
		panic(err)
	}
	_, err = s.X5Bag()
	fmt.Println(len(msg)-len(stripped), "bytes removed;", s.Verify(key.Public()) == nil, err)
	// Output: 5 bytes removed; true cose: no x5bag header
}
