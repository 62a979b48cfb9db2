package meshcop

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
)

// PSKc derivation parameters (Thread 1.4 §8.4.1.2.2; ot-commissioner
// Commissioner::GeneratePSKc in src/library/commissioner_impl.cpp:
// passphrase 6..255 bytes, network name at most 16 bytes).
const (
	PSKcIterations   = 16384
	MinPassphraseLen = 6
	MaxPassphraseLen = 255
	maxNetworkName   = 16
)

// PSKc derives the Commissioning Credential from the network's
// commissioning passphrase:
//
//	PSKc = PBKDF2(PRF = AES-CMAC-PRF-128, P = passphrase,
//	              S = "Thread" || Extended PAN ID || Network Name,
//	              c = 16384, dkLen = 16)
//
// Thread 1.4 §8.4.1.2.2; OpenThread src/core/meshcop/meshcop.cpp
// (GeneratePskc) and src/core/crypto/pbkdf2_cmac.cpp; RFC 8018 §5.2
// (PBKDF2), RFC 4615 (AES-CMAC-PRF-128), RFC 4493 (AES-CMAC).
func PSKc(passphrase, networkName string, extPANID [8]byte) ([16]byte, error) {
	var out [16]byte
	if n := len(passphrase); n < MinPassphraseLen || n > MaxPassphraseLen {
		return out, fmt.Errorf("%w: passphrase of %d bytes, want %d..%d", ErrPSKcInput, n, MinPassphraseLen, MaxPassphraseLen)
	}
	if len(networkName) > maxNetworkName {
		return out, fmt.Errorf("%w: network name of %d bytes, want at most %d", ErrPSKcInput, len(networkName), maxNetworkName)
	}
	prf, err := newCMACPRF([]byte(passphrase))
	if err != nil {
		return out, err
	}
	salt := make([]byte, 0, 6+8+len(networkName)+4)
	salt = append(salt, "Thread"...)
	salt = append(salt, extPANID[:]...)
	salt = append(salt, networkName...)
	salt = append(salt, 0, 0, 0, 1) // INT(1): dkLen 16 is one PRF block
	u := prf.sum(salt)
	out = u
	for range PSKcIterations - 1 {
		u = prf.sum(u[:])
		subtle.XORBytes(out[:], out[:], u[:])
	}
	return out, nil
}

// cmac is AES-CMAC (RFC 4493) under one key.
type cmac struct {
	block  cipher.Block
	k1, k2 [16]byte
}

func newCMAC(key []byte) (*cmac, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("meshcop: AES-CMAC key: %w", err)
	}
	c := &cmac{block: b}
	var l [16]byte
	b.Encrypt(l[:], l[:])
	c.k1 = dbl(l)
	c.k2 = dbl(c.k1)
	return c, nil
}

// newCMACPRF is AES-CMAC-PRF-128 (RFC 4615 §3): a key that is not 16
// bytes is first reduced with AES-CMAC under the zero key.
func newCMACPRF(key []byte) (*cmac, error) {
	if len(key) != 16 {
		z, err := newCMAC(make([]byte, 16))
		if err != nil {
			return nil, err
		}
		k := z.sum(key)
		key = k[:]
	}
	return newCMAC(key)
}

// dbl is the RFC 4493 §2.3 subkey doubling in GF(2^128), Rb = 0x87.
func dbl(in [16]byte) [16]byte {
	var out [16]byte
	carry := in[0] >> 7
	for i := range 15 {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[15] = in[15]<<1 ^ 0x87*carry
	return out
}

// sum is AES-CMAC(key, msg) (RFC 4493 §2.4).
func (c *cmac) sum(msg []byte) [16]byte {
	var x [16]byte
	for len(msg) > 16 {
		subtle.XORBytes(x[:], x[:], msg[:16])
		c.block.Encrypt(x[:], x[:])
		msg = msg[16:]
	}
	var last [16]byte
	if len(msg) == 16 {
		subtle.XORBytes(last[:], msg, c.k1[:])
	} else {
		copy(last[:], msg)
		last[len(msg)] = 0x80
		subtle.XORBytes(last[:], last[:], c.k2[:])
	}
	subtle.XORBytes(x[:], x[:], last[:])
	c.block.Encrypt(x[:], x[:])
	return x
}
