package voucher

import (
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

var (
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSerialNumber   = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// IDevIDIssuer returns the idevid-issuer value for cert: the full
// Authority Key Identifier extnValue OCTET STRING, DER
// 04 len 30 len 80 len keyIdentifier (rfc8366bis §"Clarifications on
// idevid-issuer", closing RFC 8366 erratum 7263; spec/cbrski.md §3.1).
//
// If cert has no AKI extension, it builds the same structure from the
// SHA-1 of the subjectPublicKey BIT STRING of cert (RFC 5280 §4.2.1.2
// method 1), as the registrar must. It returns nil only if cert is nil or
// its SubjectPublicKeyInfo does not parse.
func IDevIDIssuer(cert *x509.Certificate) []byte {
	if cert == nil {
		return nil
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidAuthorityKeyID) {
			out, err := asn1.Marshal(ext.Value) // extnValue: OCTET STRING
			if err != nil {
				return nil
			}
			return out
		}
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil || len(rest) != 0 {
		return nil
	}
	keyID := sha1.Sum(spki.PublicKey.Bytes)
	aki, err := asn1.Marshal(struct {
		KeyIdentifier []byte `asn1:"optional,tag:0"`
	}{KeyIdentifier: keyID[:]})
	if err != nil {
		return nil
	}
	out, err := asn1.Marshal(aki)
	if err != nil {
		return nil
	}
	return out
}

// SerialNumber returns the serialNumber attribute (OID 2.5.4.5) of cert's
// subject, which is the pledge's serial-number (RFC 8995 §2.3.1). It fails
// with ErrNoSerialNumber if the attribute is absent, empty, not a string or
// present more than once.
func SerialNumber(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("%w: nil certificate", ErrNoSerialNumber)
	}
	var serial string
	n := 0
	for _, atv := range cert.Subject.Names {
		if !atv.Type.Equal(oidSerialNumber) {
			continue
		}
		n++
		s, ok := atv.Value.(string)
		if !ok {
			return "", fmt.Errorf("%w: value of type %T", ErrNoSerialNumber, atv.Value)
		}
		serial = s
	}
	switch {
	case n == 0:
		return "", ErrNoSerialNumber
	case n > 1:
		return "", fmt.Errorf("%w: %d serialNumber attributes", ErrNoSerialNumber, n)
	case serial == "":
		return "", fmt.Errorf("%w: empty serialNumber", ErrNoSerialNumber)
	}
	return serial, nil
}
