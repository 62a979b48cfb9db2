package est

import (
	"bytes"
	"encoding/asn1"
	"fmt"
)

// Object identifiers used in the CSR attributes this server publishes.
var (
	// OIDECDSAWithSHA256 is ecdsa-with-SHA256 (RFC 5758 §3.2).
	OIDECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	// OIDECPublicKey is id-ecPublicKey (RFC 5480 §2.1.1).
	OIDECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	// OIDSecp256r1 is secp256r1, a.k.a. P-256 (RFC 5480 §2.1.1.1).
	OIDSecp256r1 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
)

// CSRAttr is one element of a CSR Attributes response:
//
//	CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
//	AttrOrOID ::= CHOICE (oid OBJECT IDENTIFIER, attribute Attribute }
//	Attribute { ATTRIBUTE:IOSet } ::= SEQUENCE {
//	     type   ATTRIBUTE.&id({IOSet}),
//	     values SET SIZE(1..MAX) OF ATTRIBUTE.&Type({IOSet}{@type}) }
//
// RFC 7030 §4.5.2. A bare OID has no Values; an Attribute has at least one.
type CSRAttr struct {
	// OID is the bare OID, or the attribute type.
	OID asn1.ObjectIdentifier
	// Values holds each value of an Attribute's SET as received (DER); nil
	// for a bare OID.
	Values []asn1.RawValue
}

// CSRAttrs is the body of application/csrattrs (Content-Format 285), the
// /att response (RFC 9148 §5.3; RFC 7030 §4.5.2).
type CSRAttrs []CSRAttr

// DefaultCSRAttrs is what /att serves: sign the CSR with ecdsa-with-SHA256,
// and use an id-ecPublicKey key on secp256r1 (expressed, as in RFC 7030
// §4.5.2, as an attribute of type id-ecPublicKey whose value is the curve
// OID).
func DefaultCSRAttrs() CSRAttrs {
	curve, err := asn1.Marshal(OIDSecp256r1)
	if err != nil {
		panic(err) // a constant OID always marshals
	}
	return CSRAttrs{
		{OID: OIDECDSAWithSHA256},
		{OID: OIDECPublicKey, Values: []asn1.RawValue{{FullBytes: curve}}},
	}
}

// attribute is the DER shape of an Attribute.
type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// Marshal returns the DER encoding of a.
func (a CSRAttrs) Marshal() ([]byte, error) {
	var body []byte
	for i, e := range a {
		var (
			b   []byte
			err error
		)
		if e.Values == nil {
			b, err = asn1.Marshal(e.OID)
		} else {
			if len(e.Values) == 0 {
				return nil, fmt.Errorf("%w: element %d: attribute with no values", ErrCSRAttrs, i)
			}
			b, err = asn1.Marshal(attribute{Type: e.OID, Values: e.Values})
		}
		if err != nil {
			return nil, fmt.Errorf("%w: element %d: %v", ErrCSRAttrs, i, err)
		}
		body = append(body, b...)
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

// ParseCSRAttrs decodes a DER CsrAttrs (RFC 7030 §4.5.2). Decoding is strict
// DER: the value must re-encode to the same bytes (so SET members are in
// DER order), there is no trailing data, and attributes have at least one
// value. Unknown OIDs are kept; RFC 9148 §A.4 lets a client ignore them.
func ParseCSRAttrs(der []byte) (CSRAttrs, error) {
	if len(der) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrCSRAttrs, len(der))
	}
	var elems []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &elems)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCSRAttrs, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing data", ErrCSRAttrs)
	}
	out := make(CSRAttrs, 0, len(elems))
	for i, e := range elems {
		switch {
		case e.Class == asn1.ClassUniversal && e.Tag == asn1.TagOID && !e.IsCompound:
			var oid asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(e.FullBytes, &oid); err != nil {
				return nil, fmt.Errorf("%w: element %d: %v", ErrCSRAttrs, i, err)
			}
			out = append(out, CSRAttr{OID: oid})
		case e.Class == asn1.ClassUniversal && e.Tag == asn1.TagSequence && e.IsCompound:
			var a attribute
			if r, err := asn1.Unmarshal(e.FullBytes, &a); err != nil || len(r) != 0 {
				return nil, fmt.Errorf("%w: element %d: not an Attribute", ErrCSRAttrs, i)
			}
			if len(a.Values) == 0 {
				return nil, fmt.Errorf("%w: element %d: attribute with no values", ErrCSRAttrs, i)
			}
			out = append(out, CSRAttr{OID: a.Type, Values: a.Values})
		default:
			return nil, fmt.Errorf("%w: element %d: neither OID nor Attribute", ErrCSRAttrs, i)
		}
	}
	again, err := out.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, der) {
		return nil, fmt.Errorf("%w: not DER", ErrCSRAttrs)
	}
	return out, nil
}
