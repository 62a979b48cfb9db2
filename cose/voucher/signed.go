package voucher

import (
	"crypto"
	"fmt"
	"io"

	"github.com/tumbler-iot/tumbler/cose"
)

// SignedRequest is a COSE-signed voucher-request (media type
// application/voucher+cose, CF 836; CF 18 on /rv from OpenThread pledges):
// the parsed COSE_Sign1, which keeps the received bytes, and its decoded
// payload.
//
//	signed-voucher-request = COSE_Sign1_Tagged  ; payload: voucher-request
//
// draft-ietf-anima-constrained-voucher-31 §"Signing Voucher and
// voucher-request artifacts with COSE"; RFC 9052 §4.2.
type SignedRequest struct {
	Sign1   *cose.Sign1
	Request *Request
}

// SignedVoucher is a COSE-signed voucher (application/voucher+cose, CF 836):
// the parsed COSE_Sign1 and its decoded payload.
//
//	signed-voucher = COSE_Sign1_Tagged  ; payload: voucher
//
// draft-ietf-anima-constrained-voucher-31 §"Signing Voucher and
// voucher-request artifacts with COSE"; RFC 9052 §4.2.
type SignedVoucher struct {
	Sign1   *cose.Sign1
	Voucher *Voucher
}

// ParseSignedRequest parses a COSE-signed voucher-request strictly
// (cose.Parse) and decodes its payload (ParseRequest). It does not verify
// the signature: call Verify with the signer's key (the pledge's IDevID
// key for a PVR, the registrar key from the x5bag for an RVR).
func ParseSignedRequest(data []byte) (*SignedRequest, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, err
	}
	r, err := ParseRequest(m.Payload())
	if err != nil {
		return nil, err
	}
	return &SignedRequest{Sign1: m, Request: r}, nil
}

// ParseSignedVoucher parses a COSE-signed voucher strictly (cose.Parse) and
// decodes its payload (ParseVoucher). It does not verify the signature:
// call Verify with the MASA's key.
func ParseSignedVoucher(data []byte) (*SignedVoucher, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, err
	}
	v, err := ParseVoucher(m.Payload())
	if err != nil {
		return nil, err
	}
	return &SignedVoucher{Sign1: m, Voucher: v}, nil
}

// Verify verifies the COSE signature with pub (see cose.Sign1.Verify).
func (s *SignedRequest) Verify(pub crypto.PublicKey) error { return s.Sign1.Verify(pub) }

// Verify verifies the COSE signature with pub (see cose.Sign1.Verify).
func (s *SignedVoucher) Verify(pub crypto.PublicKey) error { return s.Sign1.Verify(pub) }

// SignRequest encodes r and signs it as a COSE_Sign1 with protected header
// {1: alg} only; x5bag, if not empty, goes into the unprotected bucket (an
// RVR MUST carry the registrar chain plus the pledge's chain, a PVR SHOULD
// NOT carry any).
func SignRequest(rand io.Reader, key crypto.Signer, r *Request, x5bag [][]byte) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil request", ErrMissingField)
	}
	payload, err := r.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	return cose.Sign(rand, key, payload, cose.SignOptions{X5Bag: x5bag})
}

// SignVoucher encodes v and signs it as a COSE_Sign1 with protected header
// {1: alg} only; x5bag, if not empty (the MASA's chain for the registrar),
// goes into the unprotected bucket. created-on is required: rfc8366bis made
// it optional, but OT-Registrar still rejects vouchers without it
// (spec/cbrski.md §9 pitfall 4).
func SignVoucher(rand io.Reader, key crypto.Signer, v *Voucher, x5bag [][]byte) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: nil voucher", ErrMissingField)
	}
	if v.CreatedOn.IsZero() {
		return nil, fmt.Errorf("%w: created-on", ErrMissingField)
	}
	payload, err := v.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	return cose.Sign(rand, key, payload, cose.SignOptions{X5Bag: x5bag})
}
