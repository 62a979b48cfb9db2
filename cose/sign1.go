package cose

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"
)

// COSE header parameter labels used by Tumbler (RFC 9052 §3.1, RFC 9360 §2).
const (
	HeaderAlgorithm = 1  // alg: int / tstr
	HeaderCritical  = 2  // crit: [+ label]
	HeaderKID       = 4  // kid: bstr
	HeaderX5Bag     = 32 // x5bag: COSE_X509 = bstr / [2*certs: bstr]
)

// COSE algorithm identifiers (RFC 9053 §2.1, §2.2).
const (
	AlgES256 int64 = -7
	AlgEdDSA int64 = -8
	AlgES384 int64 = -35
	AlgES512 int64 = -36
)

// TagSign1 is the CBOR tag of COSE_Sign1_Tagged (RFC 9052 §4.2).
const TagSign1 = 18

// understoodCritical lists the header labels this package processes and may
// therefore accept inside crit (RFC 9052 §3.1).
var understoodCritical = map[any]bool{
	int64(HeaderAlgorithm): true,
	int64(HeaderKID):       true,
	int64(HeaderX5Bag):     true,
}

// Sign1 is a parsed COSE_Sign1 message. It keeps the received bytes: the
// whole message, the serialized protected header exactly as it was signed,
// the payload and the signature; Verify works on those bytes only.
//
//	COSE_Sign1_Tagged = #6.18(COSE_Sign1)
//	COSE_Sign1 = [
//	    Headers,                    ; protected : empty_or_serialized_map,
//	                                ; unprotected : header_map
//	    payload : bstr / nil,
//	    signature : bstr
//	]
//
// RFC 9052 §4.2.
type Sign1 struct {
	raw         []byte
	protected   []byte // serialized protected header map (content of the bstr)
	unprotected []byte // encoded unprotected header map
	payload     []byte
	signature   []byte

	alg   int64
	kid   []byte
	x5bag [][]byte
}

// Parse decodes a COSE_Sign1_Tagged message strictly:
//   - the input is at most MaxMessageSize bytes (ErrTooLarge, checked first);
//   - it is well-formed CBOR within the limits of DecMode, with no trailing
//     bytes, no duplicate map keys and no indefinite lengths;
//   - it carries tag 18; an untagged COSE_Sign1 is rejected, because every
//     cBRSKI artifact and every Tumbler record is tagged and accepting both
//     forms would give one signed message two encodings;
//   - the envelope (tag, array, byte string heads) is in preferred
//     serialization, so Raw is the only encoding of what was parsed;
//   - the payload is attached (detached payloads are not supported);
//   - alg is an integer in the protected bucket and absent from the
//     unprotected one; no label occurs in both buckets; crit names only
//     parameters this package understands; kid is a bstr; x5bag is a bstr
//     or a non-empty array of bstr.
//
// Parse does not verify the signature: call Verify. The returned Sign1
// references data (see Raw), which must not be modified afterwards.
func Parse(data []byte) (*Sign1, error) {
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	if err := decMode.Wellformed(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if data[0] != 0xd2 { // #6.18 in preferred serialization
		if data[0]>>5 == majorArray {
			return nil, fmt.Errorf("%w: untagged COSE_Sign1 not accepted", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: not a COSE_Sign1_Tagged message", ErrMalformed)
	}
	var items []cbor.RawMessage
	if err := decMode.Unmarshal(data[1:], &items); err != nil {
		return nil, fmt.Errorf("%w: COSE_Sign1: %w", ErrMalformed, err)
	}
	if len(items) != 4 {
		return nil, fmt.Errorf("%w: COSE_Sign1 has %d elements, want 4", ErrMalformed, len(items))
	}
	m := &Sign1{raw: data}
	var err error
	if m.protected, err = decodeBstr(items[0], "protected header"); err != nil {
		return nil, err
	}
	if len(items[1]) == 0 || items[1][0]>>5 != majorMap {
		return nil, fmt.Errorf("%w: unprotected header is not a map", ErrMalformed)
	}
	m.unprotected = items[1]
	if bytes.Equal(items[2], []byte{0xf6}) {
		return nil, fmt.Errorf("%w: detached payload not supported", ErrMalformed)
	}
	if m.payload, err = decodeBstr(items[2], "payload"); err != nil {
		return nil, err
	}
	if m.signature, err = decodeBstr(items[3], "signature"); err != nil {
		return nil, err
	}
	if len(m.signature) == 0 {
		return nil, fmt.Errorf("%w: empty signature", ErrMalformed)
	}
	if !bytes.Equal(appendEnvelope(nil, m.protected, m.unprotected, m.payload, m.signature), data) {
		return nil, fmt.Errorf("%w: envelope not in preferred serialization", ErrMalformed)
	}
	if err := m.parseHeaders(); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalCBOR implements cbor.Unmarshaler with the rules of Parse, so a
// Sign1 can be embedded in other CBOR structures.
func (m *Sign1) UnmarshalCBOR(data []byte) error {
	p, err := Parse(bytes.Clone(data))
	if err != nil {
		return err
	}
	*m = *p
	return nil
}

// MarshalCBOR implements cbor.Marshaler. For a parsed message it returns
// bytes equal to Raw.
func (m *Sign1) MarshalCBOR() ([]byte, error) {
	if len(m.signature) == 0 {
		return nil, fmt.Errorf("%w: empty Sign1", ErrMalformed)
	}
	return appendEnvelope(nil, m.protected, m.unprotected, m.payload, m.signature), nil
}

// parseHeaders decodes both buckets and applies the header rules of Parse.
func (m *Sign1) parseHeaders() error {
	prot := map[any]cbor.RawMessage{}
	if len(m.protected) > 0 {
		if m.protected[0]>>5 != majorMap {
			return fmt.Errorf("%w: protected header is not a map", ErrMalformed)
		}
		var err error
		if prot, err = decodeHeaderMap(m.protected, "protected"); err != nil {
			return err
		}
	}
	unprot, err := decodeHeaderMap(m.unprotected, "unprotected")
	if err != nil {
		return err
	}
	for label := range unprot {
		if _, dup := prot[label]; dup {
			return fmt.Errorf("%w: header label %v in both buckets", ErrMalformed, label)
		}
	}

	if _, ok := unprot[int64(HeaderAlgorithm)]; ok {
		return fmt.Errorf("%w: alg in the unprotected bucket", ErrAlgorithm)
	}
	rawAlg, ok := prot[int64(HeaderAlgorithm)]
	if !ok {
		return fmt.Errorf("%w: no alg in the protected bucket", ErrAlgorithm)
	}
	if len(rawAlg) == 0 || (rawAlg[0]>>5 != majorUint && rawAlg[0]>>5 != majorNint) {
		return fmt.Errorf("%w: alg is not an integer", ErrAlgorithm)
	}
	if err := decMode.Unmarshal(rawAlg, &m.alg); err != nil {
		return fmt.Errorf("%w: alg: %w", ErrAlgorithm, err)
	}

	if _, ok := unprot[int64(HeaderCritical)]; ok {
		return fmt.Errorf("%w: crit in the unprotected bucket", ErrMalformed)
	}
	if rawCrit, ok := prot[int64(HeaderCritical)]; ok {
		if err := checkCritical(rawCrit, prot); err != nil {
			return err
		}
	}

	kid, ok := prot[int64(HeaderKID)]
	if !ok {
		kid, ok = unprot[int64(HeaderKID)]
	}
	if ok {
		if m.kid, err = decodeBstr(kid, "kid"); err != nil {
			return err
		}
	}

	bag, ok := prot[int64(HeaderX5Bag)]
	if !ok {
		bag, ok = unprot[int64(HeaderX5Bag)]
	}
	if ok {
		if m.x5bag, err = decodeX5Bag(bag); err != nil {
			return err
		}
	}
	return nil
}

// checkCritical applies RFC 9052 §3.1 to crit: a non-empty array of labels,
// each present in the protected bucket and understood by this package.
func checkCritical(raw cbor.RawMessage, prot map[any]cbor.RawMessage) error {
	if len(raw) == 0 || raw[0]>>5 != majorArray {
		return fmt.Errorf("%w: crit is not an array", ErrMalformed)
	}
	var labels []any
	if err := decMode.Unmarshal(raw, &labels); err != nil {
		return fmt.Errorf("%w: crit: %w", ErrMalformed, err)
	}
	if len(labels) == 0 {
		return fmt.Errorf("%w: empty crit", ErrMalformed)
	}
	for _, l := range labels {
		switch l.(type) {
		case int64, string:
		default:
			return fmt.Errorf("%w: crit label of type %T", ErrMalformed, l)
		}
		if !understoodCritical[l] {
			return fmt.Errorf("%w: %v", ErrUnsupportedHeader, l)
		}
		if _, ok := prot[l]; !ok {
			return fmt.Errorf("%w: critical label %v not in the protected bucket", ErrMalformed, l)
		}
	}
	return nil
}

// decodeHeaderMap decodes a header_map whose labels are int / tstr
// (RFC 9052 §3).
func decodeHeaderMap(b []byte, bucket string) (map[any]cbor.RawMessage, error) {
	var h map[any]cbor.RawMessage
	if err := decMode.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: %s header: %w", ErrMalformed, bucket, err)
	}
	for label := range h {
		switch label.(type) {
		case int64, string:
		default:
			return nil, fmt.Errorf("%w: %s header label of type %T", ErrMalformed, bucket, label)
		}
	}
	return h, nil
}

// decodeX5Bag decodes COSE_X509 = bstr / [2*certs: bstr] (RFC 9360 §2). A
// one-element array is accepted too, as some encoders always emit an array.
func decodeX5Bag(raw cbor.RawMessage) ([][]byte, error) {
	if len(raw) > 0 && raw[0]>>5 == majorBstr {
		c, err := decodeBstr(raw, "x5bag")
		if err != nil {
			return nil, err
		}
		if len(c) == 0 {
			return nil, fmt.Errorf("%w: empty x5bag certificate", ErrMalformed)
		}
		return [][]byte{c}, nil
	}
	if len(raw) == 0 || raw[0]>>5 != majorArray {
		return nil, fmt.Errorf("%w: x5bag is neither bstr nor array", ErrMalformed)
	}
	var items []cbor.RawMessage
	if err := decMode.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: x5bag: %w", ErrMalformed, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: empty x5bag", ErrMalformed)
	}
	out := make([][]byte, 0, len(items))
	for _, it := range items {
		c, err := decodeBstr(it, "x5bag certificate")
		if err != nil {
			return nil, err
		}
		if len(c) == 0 {
			return nil, fmt.Errorf("%w: empty x5bag certificate", ErrMalformed)
		}
		out = append(out, c)
	}
	return out, nil
}

// Verify checks the signature with pub over the Sig_structure built from the
// received protected header bytes, an empty external_aad and the payload
// (RFC 9052 §4.4). The algorithm is the one implied by the key type (P-256:
// ES256, P-384: ES384, P-521: ES512, Ed25519: EdDSA) and must equal the
// protected alg, else ErrAlgorithm. A wrong signature is ErrBadSignature.
func (m *Sign1) Verify(pub crypto.PublicKey) error {
	if len(m.signature) == 0 {
		return fmt.Errorf("%w: empty Sign1", ErrMalformed)
	}
	alg, err := algorithmFor(pub)
	if err != nil {
		return err
	}
	if alg != m.alg {
		return fmt.Errorf("%w: key implies %d, message says %d", ErrAlgorithm, alg, m.alg)
	}
	v, err := gocose.NewVerifier(gocose.Algorithm(alg), pub)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	if err := v.Verify(sigStructure(m.protected, m.payload), m.signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// StripUnprotected re-encodes the message with an empty unprotected header
// map, keeping the protected header, payload and signature bytes exactly, so
// the signature still verifies. A registrar uses it to remove the MASA's
// x5bag before forwarding a voucher to the pledge ([CV] §"COSE-signed
// Voucher from MASA", cBRSKI -31).
func (m *Sign1) StripUnprotected() ([]byte, error) {
	if len(m.signature) == 0 {
		return nil, fmt.Errorf("%w: empty Sign1", ErrMalformed)
	}
	return appendEnvelope(nil, m.protected, []byte{0xa0}, m.payload, m.signature), nil
}

// X5Bag parses the certificates of the x5bag header (label 32, RFC 9360),
// from whichever bucket carries it, in the order they were sent. It returns
// ErrNoX5Bag if there is none and ErrCertificate if one does not parse.
func (m *Sign1) X5Bag() ([]*x509.Certificate, error) {
	if len(m.x5bag) == 0 {
		return nil, ErrNoX5Bag
	}
	certs := make([]*x509.Certificate, 0, len(m.x5bag))
	for i, der := range m.x5bag {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrCertificate, i, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// X5BagRaw returns the DER certificates of the x5bag header, or nil.
func (m *Sign1) X5BagRaw() [][]byte { return m.x5bag }

// KID returns the kid header (label 4) from whichever bucket carries it, or
// nil.
func (m *Sign1) KID() []byte { return m.kid }

// Algorithm returns the protected alg.
func (m *Sign1) Algorithm() int64 { return m.alg }

// Payload returns the payload bytes.
func (m *Sign1) Payload() []byte { return m.payload }

// Signature returns the signature bytes.
func (m *Sign1) Signature() []byte { return m.signature }

// RawProtected returns the serialized protected header map exactly as
// received (the content of the protected bstr).
func (m *Sign1) RawProtected() []byte { return m.protected }

// Raw returns the whole message as received.
//
// The slices returned by Sign1's accessors alias the parsed message and
// must not be modified.
func (m *Sign1) Raw() []byte { return m.raw }

// decodeBstr decodes an untagged CBOR byte string.
func decodeBstr(raw cbor.RawMessage, what string) ([]byte, error) {
	if len(raw) == 0 || raw[0]>>5 != majorBstr {
		return nil, fmt.Errorf("%w: %s is not a byte string", ErrMalformed, what)
	}
	var b []byte
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// sigStructure encodes
//
//	Sig_structure = ["Signature1", body_protected : bstr, external_aad : h'', payload : bstr]
//
// (RFC 9052 §4.4) in deterministic encoding.
func sigStructure(protected, payload []byte) []byte {
	b := make([]byte, 0, 24+len(protected)+len(payload))
	b = append(b, 0x84)            // array(4)
	b = append(b, 0x6a)            // tstr(10)
	b = append(b, "Signature1"...) // context
	b = appendBstr(b, protected)   // body_protected
	b = append(b, 0x40)            // external_aad = h''
	b = appendBstr(b, payload)     // payload
	return b
}

// appendEnvelope encodes COSE_Sign1_Tagged in preferred serialization;
// unprotected is an already-encoded map.
func appendEnvelope(b, protected, unprotected, payload, signature []byte) []byte {
	b = append(b, 0xd2, 0x84) // #6.18, array(4)
	b = appendBstr(b, protected)
	b = append(b, unprotected...)
	b = appendBstr(b, payload)
	return appendBstr(b, signature)
}

// CBOR major types (RFC 8949 §3.1).
const (
	majorUint  = 0
	majorNint  = 1
	majorBstr  = 2
	majorTstr  = 3
	majorArray = 4
	majorMap   = 5
)

// appendBstr appends a byte string with its shortest head (RFC 8949 §4.2.1).
func appendBstr(b, s []byte) []byte {
	return append(appendHead(b, majorBstr, uint64(len(s))), s...)
}

// appendHead appends the shortest head for major type major and argument n.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
