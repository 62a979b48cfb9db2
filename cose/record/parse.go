package record

import (
	"bytes"
	"crypto"
	"fmt"

	"github.com/tumbler-iot/tumbler/cose"
)

// protectedPrefix is the encoded protected header up to the kid bytes:
// {1: -7, 4: bstr .size 8} is h'A2 01 26 04 48' || kid.
var protectedPrefix = []byte{
	0xa2,       // map(2)
	0x01, 0x26, // 1 (alg): -7 (ES256)
	0x04, 0x48, // 4 (kid): bstr(8)
}

// kidSize is the size of a gateway key id.
const kidSize = 8

// Signed is a parsed record: the COSE_Sign1 it came in, the decoded record
// and its id.
type Signed struct {
	// Sign1 is the envelope; Sign1.Raw() is the record's bytes.
	Sign1 *cose.Sign1
	// Record is the decoded payload.
	Record *Record
	// ID is the record id, the SHA-256 of Sign1.Raw().
	ID ID
}

// Parse decodes a record strictly (docs/records.cddl record-cose):
//   - the envelope is a COSE_Sign1_Tagged message acceptable to
//     cose.Parse (size bound, well-formed, preferred serialization, tag
//     18), otherwise ErrMalformed, also wrapping cose's sentinel;
//   - the protected header is exactly {1: -7, 4: kid} with an 8-byte kid
//     and the unprotected header is empty (ErrHeader);
//   - the signature is 64 bytes and low-S (ErrSignatureEncoding);
//   - the payload follows the rules of ParsePayload.
//
// Parse does not verify the signature: call Verify. The Signed references
// data (through Sign1), which must not be modified afterwards; its Record
// does not.
func Parse(data []byte) (*Signed, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	prot := m.RawProtected()
	if len(prot) != len(protectedPrefix)+kidSize || !bytes.HasPrefix(prot, protectedPrefix) {
		return nil, fmt.Errorf("%w: protected header is not {1: -7, 4: bstr .size 8}", ErrHeader)
	}
	// cose.Parse checked the envelope is in preferred serialization:
	// tag, array head, bstr head (1 byte for 13 bytes), protected; the
	// unprotected map follows.
	if off := 3 + len(prot); data[off] != 0xa0 {
		return nil, fmt.Errorf("%w: unprotected header is not empty", ErrHeader)
	}
	sig := m.Signature()
	if len(sig) != sigSize || !isLowS(sig[sigSize/2:]) {
		return nil, fmt.Errorf("%w: %d-byte signature", ErrSignatureEncoding, len(sig))
	}
	r, err := ParsePayload(m.Payload())
	if err != nil {
		return nil, err
	}
	return &Signed{Sign1: m, Record: r, ID: IDOf(data)}, nil
}

// Raw returns the record's bytes (the whole COSE_Sign1).
func (s *Signed) Raw() []byte { return s.Sign1.Raw() }

// KID returns the gateway key id of the protected header.
func (s *Signed) KID() []byte { return s.Sign1.KID() }

// Verify checks that the record's kid is cose.KeyID(pub) (ErrKeyID) and its
// signature under pub (wrapping cose.ErrBadSignature). pub must be an ECDSA
// P-256 key (ErrKey).
func (s *Signed) Verify(pub crypto.PublicKey) error {
	if err := checkP256(pub); err != nil {
		return err
	}
	kid, err := cose.KeyID(pub)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	if !bytes.Equal(kid, s.KID()) {
		return fmt.Errorf("%w: record kid %x, key id %x", ErrKeyID, s.KID(), kid)
	}
	if err := s.Sign1.Verify(pub); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
