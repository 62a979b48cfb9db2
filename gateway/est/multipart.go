package est

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// part is one representation of an application/multipart-core collection:
//
//	multipart-core = [* multipart-part]
//	multipart-part = (type: uint .size 2, part: bytes / null)
//
// RFC 8710 §2. Tumbler has no use for null (absent optional) parts, so the
// decoder rejects them.
type part struct {
	format uint16
	data   []byte
}

var (
	// mpDec decodes strictly: definite lengths only, no tags, bounded
	// nesting and element count (RFC 8710 §6 warns of exhaustion attacks).
	mpDec = mustDecMode(cbor.DecOptions{
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 2 * MaxCerts,
		MaxMapPairs:      16,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	})
	mpEnc = mustEncMode(cbor.CoreDetEncOptions())
)

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err) // static options: a programming error
	}
	return m
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

// encodeMultipart serialises parts as a CBOR array in preferred
// serialization.
func encodeMultipart(parts []part) ([]byte, error) {
	arr := make([]any, 0, 2*len(parts))
	for _, p := range parts {
		arr = append(arr, uint64(p.format), p.data)
	}
	return mpEnc.Marshal(arr)
}

// decodeMultipart parses an application/multipart-core representation. It
// follows RFC 8710 §2 strictly ("MUST stop processing ... if there is a CBOR
// well-formedness error, a deviation from the structure defined above, or
// any residual data") and in addition requires preferred serialization, so
// that one collection has exactly one encoding: a decoded value re-encodes
// to the input bytes.
func decodeMultipart(b []byte) ([]part, error) {
	var arr []any
	if err := mpDec.Unmarshal(b, &arr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMultipart, err)
	}
	if arr == nil {
		return nil, fmt.Errorf("%w: not an array", ErrMultipart)
	}
	if len(arr)%2 != 0 {
		return nil, fmt.Errorf("%w: odd number of elements (%d)", ErrMultipart, len(arr))
	}
	parts := make([]part, 0, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		f, ok := arr[i].(uint64)
		if !ok || f > 0xffff {
			return nil, fmt.Errorf("%w: element %d: content-format must be uint .size 2", ErrMultipart, i)
		}
		d, ok := arr[i+1].([]byte)
		if !ok {
			return nil, fmt.Errorf("%w: element %d: representation must be a byte string", ErrMultipart, i+1)
		}
		parts = append(parts, part{format: uint16(f), data: d})
	}
	again, err := encodeMultipart(parts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMultipart, err)
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in preferred serialization", ErrMultipart)
	}
	return parts, nil
}
