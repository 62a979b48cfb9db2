package record

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"io"
	"math/big"

	"github.com/tumbler-iot/tumbler/cose"
)

// sigSize is the size of an ES256 signature, r || s (RFC 9053 §2.1).
const sigSize = 64

var (
	// p256N is the order of the P-256 group; p256HalfN is n/2, the
	// largest s of a low-S signature, as 32 big-endian bytes.
	p256N     = elliptic.P256().Params().N
	p256HalfN = new(big.Int).Rsh(p256N, 1).FillBytes(make([]byte, 32))
)

// Sign encodes r (see Record.MarshalCBOR) and signs it with key, a P-256
// ECDSA key, as a COSE_Sign1 with protected header {1: -7, 4: kid}, kid =
// cose.KeyID(key.Public()), and an empty unprotected header. The signature
// is normalized to low-S. rand is handed to the signer. The record id of
// the result is IDOf(result). A key that is not P-256 fails with ErrKey.
//
//	record-cose = #6.18(record-sign1)
//	record-sign1 = [
//	  protected:   bstr .cbor record-protected,   ; {1 => -7, 4 => bstr .size 8}
//	  unprotected: {},
//	  payload:     bstr .cbor record,
//	  signature:   bstr .size 64,                  ; ES256 r || s, low-S
//	]
//
// docs/records.cddl; RFC 9052 §4.2, §4.4.
func Sign(rand io.Reader, key crypto.Signer, r *Record) ([]byte, error) {
	s, err := NewSigner(key)
	if err != nil {
		return nil, err
	}
	return s.Sign(rand, r)
}

// Signer signs records with one key. It computes the key id once: a
// gateway signs a record per check-in, and deriving the kid (encoding and
// hashing the public key) was a tenth of that cost.
type Signer struct {
	key crypto.Signer
	kid []byte
}

// NewSigner checks that key is a P-256 ECDSA key (ErrKey otherwise) and
// returns a Signer for it.
func NewSigner(key crypto.Signer) (*Signer, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: nil signer", ErrKey)
	}
	pub := key.Public()
	if err := checkP256(pub); err != nil {
		return nil, err
	}
	kid, err := cose.KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return &Signer{key: key, kid: kid}, nil
}

// KID is the key id records carry in their protected header.
func (s *Signer) KID() []byte { return append([]byte(nil), s.kid...) }

// Sign is the package function Sign with the Signer's key.
func (s *Signer) Sign(rand io.Reader, r *Record) ([]byte, error) {
	key, kid := s.key, s.kid
	payload, err := r.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	msg, err := cose.Sign(rand, key, payload, cose.SignOptions{KID: kid})
	if err != nil {
		return nil, fmt.Errorf("record: sign: %w", err)
	}
	// The signature is the message's last item: bstr(64) = 0x58 0x40 || r || s.
	n := len(msg)
	if n < sigSize+2 || msg[n-sigSize-2] != 0x58 || msg[n-sigSize-1] != sigSize {
		return nil, fmt.Errorf("record: sign: signer produced no %d-byte signature", sigSize)
	}
	lowS(msg[n-sigSize:])
	return msg, nil
}

// lowS replaces s by n - s in the ES256 signature r || s if s > n/2; both
// verify, and records accept only the smaller.
func lowS(sig []byte) {
	s := sig[sigSize/2:]
	if isLowS(s) {
		return
	}
	v := new(big.Int).SetBytes(s)
	v.Sub(p256N, v).FillBytes(s)
}

// isLowS reports whether the 32-byte big-endian s is at most n/2.
func isLowS(s []byte) bool {
	for i := range s {
		if s[i] != p256HalfN[i] {
			return s[i] < p256HalfN[i]
		}
	}
	return true
}

// checkP256 accepts ECDSA P-256 public keys only: records are ES256.
func checkP256(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil {
		return fmt.Errorf("%w: %T is not an ECDSA P-256 key", ErrKey, pub)
	}
	if k.Curve != elliptic.P256() {
		name := "nil"
		if k.Curve != nil {
			name = k.Curve.Params().Name
		}
		return fmt.Errorf("%w: ECDSA curve %s, records are ES256 (P-256)", ErrKey, name)
	}
	return nil
}
