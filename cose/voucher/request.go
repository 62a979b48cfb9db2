package voucher

import (
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Request is a voucher-request: the pledge's (PVR) or the registrar's (RVR).
// Absent leaves are zero values (nil, "", zero time); the two scalar leaves
// without a natural "absent" value, Assertion and DomainCertRevocationChecks,
// are pointers.
//
// On the wire it is SID-keyed CBOR (RFC 9254): the top-level key is 2501,
// leaves are SID deltas. Decoding also accepts absolute SIDs (tag 47) and
// YANG names, mixed. Encoding is always delta SIDs, Core Deterministic.
//
//	voucher-request = {
//	  2501 => {                                  ; ietf-voucher-request:voucher
//	    ? 1  => 0..3,                            ; assertion
//	    ? 2  => tstr,                            ; created-on (yang:date-and-time)
//	    ? 3  => bool,                            ; domain-cert-revocation-checks (ignored in a VR)
//	    ? 4  => tstr,                            ; expires-on
//	    ? 5  => bstr,                            ; idevid-issuer (AKI extnValue OCTET STRING)
//	    ? 6  => tstr,                            ; last-renewal-date (ignored in a VR)
//	    ? 7  => bstr .size (8..32),              ; nonce
//	    ? 8  => bstr,                            ; pinned-domain-cert
//	    ? 9  => bstr,                            ; prior-signed-voucher-request
//	    ? 10 => bstr,                            ; proximity-registrar-cert
//	    ? 11 => bstr .size 32,                   ; proximity-registrar-pubk-sha256
//	    ? 12 => bstr,                            ; proximity-registrar-pubk (SPKI)
//	      13 => tstr,                            ; serial-number
//	    ? 14 => bstr,                            ; agent-provided-proximity-registrar-cert
//	    ? 15 => bstr,                            ; agent-sign-cert
//	    ? 16 => bstr,                            ; agent-signed-data
//	    ? 17 => bstr,                            ; pinned-domain-pubk
//	    ? 18 => bstr .size 32,                   ; pinned-domain-pubk-sha256
//	    ? 19 => tstr,                            ; additional-configuration-url
//	    ? 20 => tstr,                            ; est-domain
//	    ? 21 => [+ (uint / tstr)],               ; extensions
//	    ? 22 => bstr,                            ; manufacturer-proprietary (bstr .cbor any)
//	  }
//	}
//
// rfc8366bis ietf-voucher-request YANG and SID file (2025-12-18);
// draft-ietf-anima-constrained-voucher-31 §"Voucher Request artifact";
// RFC 9254.
type Request struct {
	Assertion *Assertion

	CreatedOn time.Time
	ExpiresOn time.Time
	// LastRenewalDate is not valid in a voucher-request and is ignored by
	// the validation functions; it is kept so that decoding is faithful.
	LastRenewalDate time.Time

	// DomainCertRevocationChecks is not valid in a voucher-request and is
	// ignored by the validation functions.
	DomainCertRevocationChecks *bool

	IDevIDIssuer []byte
	Nonce        []byte
	SerialNumber string

	PinnedDomainCert       []byte
	PinnedDomainPubK       []byte
	PinnedDomainPubKSHA256 []byte

	PriorSignedVoucherRequest    []byte
	ProximityRegistrarCert       []byte
	ProximityRegistrarPubK       []byte
	ProximityRegistrarPubKSHA256 []byte

	// BRSKI-PRM leaves, parsed and re-encoded but not used by Tumbler.
	AgentProvidedProximityRegistrarCert []byte
	AgentSignCert                       []byte
	AgentSignedData                     []byte

	AdditionalConfigurationURL string
	ESTDomain                  string
	Extensions                 []Extension
	ManufacturerProprietary    []byte
}

// ParseRequest decodes a voucher-request payload (the COSE payload, not the
// COSE_Sign1). Inputs over cose.MaxMessageSize fail with cose.ErrTooLarge;
// structural failures wrap ErrMalformed, keys outside the module
// ErrUnknownLeaf, a missing serial-number ErrMissingField.
func ParseRequest(data []byte) (*Request, error) {
	b, err := decodeBody(data, requestModule)
	if err != nil {
		return nil, err
	}
	r := &Request{}
	r.fromBody(b)
	return r, nil
}

// MarshalCBOR implements cbor.Marshaler: delta-SID-keyed, Core Deterministic
// CBOR. It fails on values the decoder would reject.
func (r *Request) MarshalCBOR() ([]byte, error) {
	return encodeBody(r.toBody(), requestModule)
}

// UnmarshalCBOR implements cbor.Unmarshaler with the rules of ParseRequest.
func (r *Request) UnmarshalCBOR(data []byte) error {
	p, err := ParseRequest(data)
	if err != nil {
		return err
	}
	*r = *p
	return nil
}

func (r *Request) toBody() *body {
	return &body{
		assertion:                           r.Assertion,
		createdOn:                           r.CreatedOn,
		revocationChecks:                    r.DomainCertRevocationChecks,
		expiresOn:                           r.ExpiresOn,
		idevidIssuer:                        r.IDevIDIssuer,
		lastRenewalDate:                     r.LastRenewalDate,
		nonce:                               r.Nonce,
		pinnedDomainCert:                    r.PinnedDomainCert,
		pinnedDomainPubK:                    r.PinnedDomainPubK,
		pinnedDomainPubKSHA256:              r.PinnedDomainPubKSHA256,
		serialNumber:                        r.SerialNumber,
		additionalConfigurationURL:          r.AdditionalConfigurationURL,
		estDomain:                           r.ESTDomain,
		manufacturerProprietary:             r.ManufacturerProprietary,
		extensions:                          r.Extensions,
		priorSignedVoucherRequest:           r.PriorSignedVoucherRequest,
		proximityRegistrarCert:              r.ProximityRegistrarCert,
		proximityRegistrarPubKSHA256:        r.ProximityRegistrarPubKSHA256,
		proximityRegistrarPubK:              r.ProximityRegistrarPubK,
		agentProvidedProximityRegistrarCert: r.AgentProvidedProximityRegistrarCert,
		agentSignCert:                       r.AgentSignCert,
		agentSignedData:                     r.AgentSignedData,
	}
}

func (r *Request) fromBody(b *body) {
	*r = Request{
		Assertion:                           b.assertion,
		CreatedOn:                           b.createdOn,
		ExpiresOn:                           b.expiresOn,
		LastRenewalDate:                     b.lastRenewalDate,
		DomainCertRevocationChecks:          b.revocationChecks,
		IDevIDIssuer:                        b.idevidIssuer,
		Nonce:                               b.nonce,
		SerialNumber:                        b.serialNumber,
		PinnedDomainCert:                    b.pinnedDomainCert,
		PinnedDomainPubK:                    b.pinnedDomainPubK,
		PinnedDomainPubKSHA256:              b.pinnedDomainPubKSHA256,
		PriorSignedVoucherRequest:           b.priorSignedVoucherRequest,
		ProximityRegistrarCert:              b.proximityRegistrarCert,
		ProximityRegistrarPubK:              b.proximityRegistrarPubK,
		ProximityRegistrarPubKSHA256:        b.proximityRegistrarPubKSHA256,
		AgentProvidedProximityRegistrarCert: b.agentProvidedProximityRegistrarCert,
		AgentSignCert:                       b.agentSignCert,
		AgentSignedData:                     b.agentSignedData,
		AdditionalConfigurationURL:          b.additionalConfigurationURL,
		ESTDomain:                           b.estDomain,
		Extensions:                          b.extensions,
		ManufacturerProprietary:             b.manufacturerProprietary,
	}
}

var (
	_ cbor.Marshaler   = (*Request)(nil)
	_ cbor.Unmarshaler = (*Request)(nil)
)
