package record

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/tumbler-iot/tumbler/cose"
)

// CBOR major types (RFC 8949 §3.1).
const (
	majorUint   = 0
	majorNint   = 1
	majorBstr   = 2
	majorTstr   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// Encoded simple values used by records (RFC 8949 §3.3).
const (
	cborFalse = 0xf4
	cborTrue  = 0xf5
	cborNull  = 0xf6
)

// head is a decoded CBOR head (RFC 8949 §3): major type, additional
// information, argument, and the number of bytes it occupies.
type head struct {
	major byte
	ai    byte
	arg   uint64
	size  int
}

// readHead decodes the head at the start of data. It fails on truncation,
// on the reserved additional information values 28..30 and on indefinite
// lengths (ai 31), which records never use.
func readHead(data []byte) (head, error) {
	if len(data) == 0 {
		return head{}, fmt.Errorf("%w: truncated CBOR item", ErrMalformed)
	}
	h := head{major: data[0] >> 5, ai: data[0] & 0x1f}
	var n int
	switch {
	case h.ai < 24:
		h.arg, h.size = uint64(h.ai), 1
		return h, nil
	case h.ai == 24:
		n = 1
	case h.ai == 25:
		n = 2
	case h.ai == 26:
		n = 4
	case h.ai == 27:
		n = 8
	case h.ai == 31:
		return head{}, fmt.Errorf("%w: indefinite length", ErrMalformed)
	default:
		return head{}, fmt.Errorf("%w: reserved additional information %d", ErrMalformed, h.ai)
	}
	if len(data) < 1+n {
		return head{}, fmt.Errorf("%w: truncated CBOR head", ErrMalformed)
	}
	for _, b := range data[1 : 1+n] {
		h.arg = h.arg<<8 | uint64(b)
	}
	h.size = 1 + n
	return h, nil
}

// appendHead appends the shortest head for major type major and argument n
// (RFC 8949 §4.2.1).
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// canonical returns the Core Deterministic encoding (RFC 8949 §4.2.1) of
// the single CBOR data item data: shortest heads, map keys sorted bytewise
// by their encoding, shortest value-preserving floats, NaN as f97e00. It
// fails with ErrMalformed if data is not exactly one well-formed item within
// cose's decoding limits, has a duplicate map key (after canonicalization),
// an indefinite length or invalid UTF-8. The result is never longer than
// data.
func canonical(data []byte) ([]byte, error) {
	if len(data) > cose.MaxMessageSize {
		return nil, fmt.Errorf("%w: %w: %d bytes", ErrMalformed, cose.ErrTooLarge, len(data))
	}
	out, rest, err := appendCanonical(make([]byte, 0, len(data)), data, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return out, nil
}

// appendCanonical appends the canonical encoding of the first item of data
// to dst and returns the bytes after that item. depth counts the enclosing
// arrays, maps and tags.
func appendCanonical(dst, data []byte, depth int) ([]byte, []byte, error) {
	h, err := readHead(data)
	if err != nil {
		return nil, nil, err
	}
	rest := data[h.size:]
	switch h.major {
	case majorUint, majorNint:
		return appendHead(dst, h.major, h.arg), rest, nil

	case majorBstr, majorTstr:
		if h.arg > uint64(len(rest)) {
			return nil, nil, fmt.Errorf("%w: truncated string", ErrMalformed)
		}
		s := rest[:h.arg]
		if h.major == majorTstr && !utf8.Valid(s) {
			return nil, nil, fmt.Errorf("%w: invalid UTF-8 in text string", ErrMalformed)
		}
		return append(appendHead(dst, h.major, h.arg), s...), rest[h.arg:], nil

	case majorArray:
		if depth >= cose.MaxNestedLevels {
			return nil, nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, cose.MaxNestedLevels)
		}
		// Every element takes at least one byte: the count cannot exceed
		// what is left, which bounds the work before any element is read.
		if h.arg > cose.MaxArrayElements || h.arg > uint64(len(rest)) {
			return nil, nil, fmt.Errorf("%w: array of %d elements", ErrMalformed, h.arg)
		}
		dst = appendHead(dst, majorArray, h.arg)
		for range h.arg {
			if dst, rest, err = appendCanonical(dst, rest, depth+1); err != nil {
				return nil, nil, err
			}
		}
		return dst, rest, nil

	case majorMap:
		if depth >= cose.MaxNestedLevels {
			return nil, nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, cose.MaxNestedLevels)
		}
		if h.arg > cose.MaxMapPairs || 2*h.arg > uint64(len(rest)) {
			return nil, nil, fmt.Errorf("%w: map of %d pairs", ErrMalformed, h.arg)
		}
		return appendCanonicalMap(dst, rest, int(h.arg), depth)

	case majorTag:
		if depth >= cose.MaxNestedLevels {
			return nil, nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, cose.MaxNestedLevels)
		}
		return appendCanonical(appendHead(dst, majorTag, h.arg), rest, depth+1)

	default: // majorSimple
		switch {
		case h.ai < 24:
			return append(dst, data[0]), rest, nil
		case h.ai == 24:
			if h.arg < 32 {
				return nil, nil, fmt.Errorf("%w: two-byte simple value %d", ErrMalformed, h.arg)
			}
			return append(dst, data[:2]...), rest, nil
		}
		// ai 25, 26, 27: readHead refused 28..31.
		if dst, err = appendFloat(dst, data[:h.size]); err != nil {
			return nil, nil, err
		}
		return dst, rest, nil
	}
}

// appendCanonicalMap canonicalizes n key/value pairs from data and appends
// them sorted by the bytes of their canonical keys.
func appendCanonicalMap(dst, data []byte, n, depth int) ([]byte, []byte, error) {
	type pair struct{ k, v []byte }
	pairs := make([]pair, n)
	// buf grows with what the pairs hold, not with the rest of the input,
	// so that many small maps cost what they hold.
	var (
		buf []byte
		err error
	)
	for i := range pairs {
		k0 := len(buf)
		if buf, data, err = appendCanonical(buf, data, depth+1); err != nil {
			return nil, nil, err
		}
		v0 := len(buf)
		if buf, data, err = appendCanonical(buf, data, depth+1); err != nil {
			return nil, nil, err
		}
		pairs[i] = pair{k: buf[k0:v0:v0], v: buf[v0:len(buf):len(buf)]}
	}
	slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.k, b.k) })
	dst = appendHead(dst, majorMap, uint64(n))
	for i, p := range pairs {
		if i > 0 && bytes.Equal(p.k, pairs[i-1].k) {
			return nil, nil, fmt.Errorf("%w: duplicate map key", ErrMalformed)
		}
		dst = append(append(dst, p.k...), p.v...)
	}
	return dst, data, nil
}

// appendFloat appends the shortest encoding of the float item (a head
// with additional information 25, 26 or 27) that preserves its value, NaN
// as f97e00: cose.EncMode's float rules (RFC 8949 §4.2.1, §4.2.2).
func appendFloat(dst, item []byte) ([]byte, error) {
	var f float64
	if err := cose.DecMode().Unmarshal(item, &f); err != nil {
		return nil, fmt.Errorf("%w: float: %w", ErrMalformed, err)
	}
	enc, err := cose.EncMode().Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("%w: float: %w", ErrMalformed, err)
	}
	return append(dst, enc...), nil
}

// skipItem returns the bytes after the first item of data, which must be
// well-formed (it is used on input canonical has accepted).
func skipItem(data []byte, depth int) ([]byte, error) {
	h, err := readHead(data)
	if err != nil {
		return nil, err
	}
	rest := data[h.size:]
	switch h.major {
	case majorBstr, majorTstr:
		if h.arg > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: truncated string", ErrMalformed)
		}
		return rest[h.arg:], nil
	case majorArray, majorMap, majorTag:
		if depth >= cose.MaxNestedLevels {
			return nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, cose.MaxNestedLevels)
		}
		n := h.arg
		switch h.major {
		case majorMap:
			if n > cose.MaxMapPairs {
				return nil, fmt.Errorf("%w: map of %d pairs", ErrMalformed, n)
			}
			n *= 2
		case majorTag:
			n = 1
		}
		if n > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: truncated container", ErrMalformed)
		}
		for range n {
			if rest, err = skipItem(rest, depth+1); err != nil {
				return nil, err
			}
		}
		return rest, nil
	}
	return rest, nil
}

// pair is one key/value pair of an encoded map.
type pair struct{ k, v []byte }

// mapPairs splits an encoded map into its pairs, in encoded order. what
// names the map in errors; a non-map fails with notMap.
func mapPairs(raw []byte, what string, notMap error) ([]pair, error) {
	h, err := readHead(raw)
	if err != nil {
		return nil, err
	}
	if h.major != majorMap {
		return nil, fmt.Errorf("%w: %s is not a map", notMap, what)
	}
	if h.arg > cose.MaxMapPairs || 2*h.arg > uint64(len(raw)-h.size) {
		return nil, fmt.Errorf("%w: %s: map of %d pairs", ErrMalformed, what, h.arg)
	}
	pairs := make([]pair, 0, h.arg)
	rest := raw[h.size:]
	for range h.arg {
		k := rest
		if rest, err = skipItem(rest, 1); err != nil {
			return nil, err
		}
		v := rest
		if rest, err = skipItem(rest, 1); err != nil {
			return nil, err
		}
		pairs = append(pairs, pair{k: k[:len(k)-len(v)], v: v[:len(v)-len(rest)]})
	}
	return pairs, nil
}

// intValue decodes an integer item (major type 0 or 1) that fits an int64.
func intValue(raw []byte) (int64, bool) {
	h, err := readHead(raw)
	if err != nil || h.size != len(raw) || h.arg > math.MaxInt64 {
		return 0, false
	}
	switch h.major {
	case majorUint:
		return int64(h.arg), true
	case majorNint:
		return -1 - int64(h.arg), true
	}
	return 0, false
}

// uintValue decodes an unsigned integer item.
func uintValue(raw []byte) (uint64, bool) {
	h, err := readHead(raw)
	if err != nil || h.size != len(raw) || h.major != majorUint {
		return 0, false
	}
	return h.arg, true
}

// stringValue decodes a byte string (major majorBstr) or text string
// (majorTstr) item; the result aliases raw.
func stringValue(raw []byte, major byte) ([]byte, bool) {
	h, err := readHead(raw)
	if err != nil || h.major != major || uint64(len(raw)-h.size) != h.arg {
		return nil, false
	}
	return raw[h.size:], true
}

// isNull reports whether raw is the simple value null.
func isNull(raw []byte) bool { return len(raw) == 1 && raw[0] == cborNull }

// encUint, encInt, encText and encBytes return the canonical encoding of
// one value.
func encUint(v uint64) []byte { return appendHead(nil, majorUint, v) }

func encInt(v int64) []byte {
	if v < 0 {
		return appendHead(nil, majorNint, uint64(-1-v))
	}
	return appendHead(nil, majorUint, uint64(v))
}

func encText(s string) []byte { return append(appendHead(nil, majorTstr, uint64(len(s))), s...) }

func encBytes(b []byte) []byte { return append(appendHead(nil, majorBstr, uint64(len(b))), b...) }
