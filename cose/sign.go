package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"

	gocose "github.com/veraison/go-cose"
)

// SignOptions selects the header parameters of a message made by Sign.
type SignOptions struct {
	// KID, if not empty, goes into the protected bucket (label 4), as
	// Tumbler's records need their key id covered by the signature.
	KID []byte

	// UnprotectedKID, if not empty, goes into the unprotected bucket
	// instead (the draft's "PVR+kid" shape). Setting both is an error.
	UnprotectedKID []byte

	// X5Bag, if not empty, goes into the unprotected bucket (label 32):
	// a single certificate as a bstr, several as an array of bstr
	// (RFC 9360 §2).
	X5Bag [][]byte
}

// Sign makes a COSE_Sign1_Tagged message over payload with key, external_aad
// empty (RFC 9052 §4.4). The algorithm follows from the key: ECDSA P-256
// gives ES256 (-7), P-384 ES384, P-521 ES512, Ed25519 EdDSA (-8). The
// protected header is exactly {1: alg} (h'A10126' for ES256) or
// {1: alg, 4: kid}; the encoding is deterministic. rand is handed to the
// signer (it may be ignored by the standard library's ECDSA and Ed25519).
func Sign(rand io.Reader, key crypto.Signer, payload []byte, opts SignOptions) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: nil signer", ErrKey)
	}
	if len(opts.KID) > 0 && len(opts.UnprotectedKID) > 0 {
		return nil, fmt.Errorf("%w: kid in both buckets", ErrOptions)
	}
	alg, err := algorithmFor(key.Public())
	if err != nil {
		return nil, err
	}

	prot := map[int64]any{HeaderAlgorithm: alg}
	if len(opts.KID) > 0 {
		prot[HeaderKID] = opts.KID
	}
	protected, err := Marshal(prot)
	if err != nil {
		return nil, err
	}

	unprot := map[int64]any{}
	if len(opts.UnprotectedKID) > 0 {
		unprot[HeaderKID] = opts.UnprotectedKID
	}
	switch len(opts.X5Bag) {
	case 0:
	case 1:
		unprot[HeaderX5Bag] = opts.X5Bag[0]
	default:
		unprot[HeaderX5Bag] = opts.X5Bag
	}
	for i, c := range opts.X5Bag {
		if len(c) == 0 {
			return nil, fmt.Errorf("%w: empty x5bag certificate %d", ErrOptions, i)
		}
	}
	unprotected, err := Marshal(unprot)
	if err != nil {
		return nil, err
	}

	signer, err := gocose.NewSigner(gocose.Algorithm(alg), key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if payload == nil {
		payload = []byte{}
	}
	sig, err := signer.Sign(rand, sigStructure(protected, payload))
	if err != nil {
		return nil, fmt.Errorf("cose: sign: %w", err)
	}
	out := appendEnvelope(make([]byte, 0, 16+len(protected)+len(unprotected)+len(payload)+len(sig)),
		protected, unprotected, payload, sig)
	if len(out) > MaxMessageSize {
		return nil, fmt.Errorf("%w: signed message of %d bytes, limit %d", ErrTooLarge, len(out), MaxMessageSize)
	}
	return out, nil
}

// algorithmFor maps a public key to its COSE algorithm.
func algorithmFor(pub crypto.PublicKey) (int64, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return 0, fmt.Errorf("%w: nil ECDSA key", ErrKey)
		}
		switch k.Curve {
		case elliptic.P256():
			return AlgES256, nil
		case elliptic.P384():
			return AlgES384, nil
		case elliptic.P521():
			return AlgES512, nil
		}
		return 0, fmt.Errorf("%w: ECDSA curve %v", ErrAlgorithm, k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrKey, len(k))
		}
		return AlgEdDSA, nil
	case nil:
		return 0, fmt.Errorf("%w: nil key", ErrKey)
	}
	return 0, fmt.Errorf("%w: key type %T", ErrAlgorithm, pub)
}

// KeyID is Tumbler's key identifier: the first 8 bytes of the SHA-256 of the
// DER SubjectPublicKeyInfo of pub.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	sum := sha256.Sum256(spki)
	return sum[:8], nil
}
