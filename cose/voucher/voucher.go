package voucher

import (
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Voucher is a voucher issued by the MASA. Absent leaves are zero values
// (nil, "", zero time); the two scalar leaves without a natural "absent"
// value, Assertion and DomainCertRevocationChecks, are pointers.
//
// On the wire it is SID-keyed CBOR (RFC 9254): the top-level key is 2451,
// leaves are SID deltas. Decoding also accepts absolute SIDs (tag 47) and
// YANG names, mixed. Encoding is always delta SIDs, Core Deterministic.
//
//	voucher = {
//	  2451 => {                                  ; ietf-voucher:voucher
//	    ? 1  => 0..3,                            ; assertion
//	    ? 2  => tstr,                            ; created-on (yang:date-and-time)
//	    ? 3  => bool,                            ; domain-cert-revocation-checks
//	    ? 4  => tstr,                            ; expires-on
//	    ? 5  => bstr,                            ; idevid-issuer (AKI extnValue OCTET STRING)
//	    ? 6  => tstr,                            ; last-renewal-date
//	    ? 7  => bstr .size (8..32),              ; nonce
//	    ? 8  => bstr,                            ; pinned-domain-cert (DER X.509)
//	    ? 9  => bstr,                            ; pinned-domain-pubk (SPKI)
//	    ? 10 => bstr .size 32,                   ; pinned-domain-pubk-sha256
//	      11 => tstr,                            ; serial-number
//	    ? 12 => tstr,                            ; additional-configuration-url
//	    ? 13 => tstr,                            ; est-domain
//	    ? 14 => bstr,                            ; manufacturer-proprietary (bstr .cbor any)
//	    ? 15 => [+ (uint / tstr)],               ; extensions
//	  }
//	}
//
// rfc8366bis ietf-voucher YANG and SID file (2025-12-18);
// draft-ietf-anima-constrained-voucher-31 §"Voucher artifact"; RFC 9254.
type Voucher struct {
	Assertion *Assertion

	CreatedOn       time.Time
	ExpiresOn       time.Time
	LastRenewalDate time.Time

	DomainCertRevocationChecks *bool

	IDevIDIssuer []byte
	Nonce        []byte
	SerialNumber string

	PinnedDomainCert       []byte
	PinnedDomainPubK       []byte
	PinnedDomainPubKSHA256 []byte

	AdditionalConfigurationURL string
	ESTDomain                  string
	ManufacturerProprietary    []byte
	Extensions                 []Extension
}

// ParseVoucher decodes a voucher payload (the COSE payload, not the
// COSE_Sign1). Inputs over cose.MaxMessageSize fail with cose.ErrTooLarge;
// structural failures wrap ErrMalformed, keys outside the module
// ErrUnknownLeaf (a voucher-request leaf such as
// prior-signed-voucher-request included), a missing serial-number
// ErrMissingField.
func ParseVoucher(data []byte) (*Voucher, error) {
	b, err := decodeBody(data, voucherModule)
	if err != nil {
		return nil, err
	}
	v := &Voucher{}
	v.fromBody(b)
	return v, nil
}

// MarshalCBOR implements cbor.Marshaler: delta-SID-keyed, Core Deterministic
// CBOR. It fails on values the decoder would reject.
func (v *Voucher) MarshalCBOR() ([]byte, error) {
	return encodeBody(v.toBody(), voucherModule)
}

// UnmarshalCBOR implements cbor.Unmarshaler with the rules of ParseVoucher.
func (v *Voucher) UnmarshalCBOR(data []byte) error {
	p, err := ParseVoucher(data)
	if err != nil {
		return err
	}
	*v = *p
	return nil
}

var (
	_ cbor.Marshaler   = (*Voucher)(nil)
	_ cbor.Unmarshaler = (*Voucher)(nil)
)

func (v *Voucher) toBody() *body {
	return &body{
		assertion:                  v.Assertion,
		createdOn:                  v.CreatedOn,
		revocationChecks:           v.DomainCertRevocationChecks,
		expiresOn:                  v.ExpiresOn,
		idevidIssuer:               v.IDevIDIssuer,
		lastRenewalDate:            v.LastRenewalDate,
		nonce:                      v.Nonce,
		pinnedDomainCert:           v.PinnedDomainCert,
		pinnedDomainPubK:           v.PinnedDomainPubK,
		pinnedDomainPubKSHA256:     v.PinnedDomainPubKSHA256,
		serialNumber:               v.SerialNumber,
		additionalConfigurationURL: v.AdditionalConfigurationURL,
		estDomain:                  v.ESTDomain,
		manufacturerProprietary:    v.ManufacturerProprietary,
		extensions:                 v.Extensions,
	}
}

func (v *Voucher) fromBody(b *body) {
	*v = Voucher{
		Assertion:                  b.assertion,
		CreatedOn:                  b.createdOn,
		ExpiresOn:                  b.expiresOn,
		LastRenewalDate:            b.lastRenewalDate,
		DomainCertRevocationChecks: b.revocationChecks,
		IDevIDIssuer:               b.idevidIssuer,
		Nonce:                      b.nonce,
		SerialNumber:               b.serialNumber,
		PinnedDomainCert:           b.pinnedDomainCert,
		PinnedDomainPubK:           b.pinnedDomainPubK,
		PinnedDomainPubKSHA256:     b.pinnedDomainPubKSHA256,
		AdditionalConfigurationURL: b.additionalConfigurationURL,
		ESTDomain:                  b.estDomain,
		ManufacturerProprietary:    b.manufacturerProprietary,
		Extensions:                 b.extensions,
	}
}
