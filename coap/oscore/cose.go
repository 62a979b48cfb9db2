package oscore

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The few CBOR items OSCORE needs (the HKDF info array of §3.2.1, the
// aad_array and Enc_structure of §5.4) are fixed shapes of byte strings and
// small integers. They are appended directly: deterministic by construction
// and allocation-free on the per-message path. cose_test.go checks them
// against fxamacker/cbor.

const (
	cborUint  = 0 << 5
	cborNeg   = 1 << 5
	cborBytes = 2 << 5
	cborText  = 3 << 5
	cborArray = 4 << 5
	cborNil   = 0xf6
)

func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= 0xff:
		return append(b, major|24, byte(n))
	case n <= 0xffff:
		return append(b, major|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, major|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, major|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendBytes(b, v []byte) []byte { return append(appendHead(b, cborBytes, uint64(len(v))), v...) }

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendHead(b, cborUint, uint64(v))
	}
	return appendHead(b, cborNeg, uint64(-1-v))
}

// hkdfInfo is the info array of §3.2.1:
//
//	info = [ id : bstr, id_context : bstr / nil, alg_aead : int / tstr,
//	         type : tstr, L : uint ]
func hkdfInfo(id, idContext []byte, hasIDContext bool, alg AEADAlgorithm, typ string, l int) []byte {
	b := make([]byte, 0, 16+len(id)+len(idContext))
	b = append(b, cborArray|5)
	b = appendBytes(b, id)
	if hasIDContext {
		b = appendBytes(b, idContext)
	} else {
		b = append(b, cborNil)
	}
	b = appendInt(b, int64(alg))
	b = appendHead(b, cborText, uint64(len(typ)))
	b = append(b, typ...)
	return appendHead(b, cborUint, uint64(l))
}

// encPrefix is the start of the Enc_structure (§5.4, RFC 8152 §5.3): the
// array header, the context text string and the empty protected header.
// external_aad follows.
//
//	Enc_structure = [ "Encrypt0", h'', external_aad ]
var encPrefix = []byte{cborArray | 3, cborText | 8, 'E', 'n', 'c', 'r', 'y', 'p', 't', '0', cborBytes}

// aadArray is the aad_array of §5.4 with no Class I options:
//
//	aad_array = [ oscore_version : uint, algorithms : [ alg_aead : int / tstr ],
//	              request_kid : bstr, request_piv : bstr, options : bstr ]
func appendAADArray(b []byte, alg AEADAlgorithm, requestKID, requestPIV []byte) []byte {
	b = append(b, cborArray|5, cborUint|1, cborArray|1)
	b = appendInt(b, int64(alg))
	b = appendBytes(b, requestKID)
	b = appendBytes(b, requestPIV)
	return append(b, cborBytes) // options: h'' (no Class I options are defined)
}

// appendAAD appends the AEAD additional data of §5.4:
// Enc_structure with external_aad = bstr .cbor aad_array.
func appendAAD(b []byte, alg AEADAlgorithm, requestKID, requestPIV []byte) []byte {
	var arr [32]byte // request_kid <= 7 bytes and request_piv <= 5 bytes keep it small
	a := appendAADArray(arr[:0], alg, requestKID, requestPIV)
	b = append(b, encPrefix...)
	return appendBytes(b, a)
}

// nonce computes the AEAD nonce of §5.2 into dst (len nonceLen): the Partial
// IV left-padded to 5 bytes, the ID_PIV left-padded to nonceLen-6 bytes,
// prefixed by its length S, XORed with the Common IV.
func makeNonce(dst *[nonceLen]byte, commonIV *[nonceLen]byte, idPIV, piv []byte) {
	*dst = [nonceLen]byte{}
	dst[0] = byte(len(idPIV))
	copy(dst[1+maxIDLen-len(idPIV):1+maxIDLen], idPIV)
	copy(dst[nonceLen-len(piv):], piv)
	for i := range dst {
		dst[i] ^= commonIV[i]
	}
}

// encodePIV returns the Partial IV for sequence number n (§5): big-endian,
// leading zero bytes removed, 0 encoded as 0x00.
func encodePIV(dst *[maxPIVLen]byte, n uint64) []byte {
	l := 1
	for v := n >> 8; v != 0; v >>= 8 {
		l++
	}
	for i := 0; i < l; i++ {
		dst[i] = byte(n >> (8 * (l - 1 - i)))
	}
	return dst[:l]
}

// decodePIV returns the sequence number a Partial IV encodes.
func decodePIV(piv []byte) uint64 {
	var n uint64
	for _, c := range piv {
		n = n<<8 | uint64(c)
	}
	return n
}

// appendPlaintext appends the plaintext of §5.3: Code, the Class E options
// (sorted, delta-encoded among themselves), and the payload after 0xff.
func appendPlaintext(b []byte, code codes.Code, inner message.Options, payload []byte) ([]byte, error) {
	if code > 0xff {
		return nil, fmt.Errorf("%w: code %d does not fit a byte", ErrInvalidMessage, code)
	}
	b = append(b, byte(code))
	n, err := inner.Marshal(nil)
	if err != nil && !errors.Is(err, message.ErrTooSmall) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	size := 1 + n + len(payload)
	if len(payload) > 0 {
		size++ // payload marker
	}
	if size > maxPlaintext {
		return nil, fmt.Errorf("%w: plaintext longer than %d bytes", ErrInvalidMessage, maxPlaintext)
	}
	start := len(b)
	b = append(b, make([]byte, n)...)
	if _, err := inner.Marshal(b[start:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if len(payload) > 0 {
		b = append(b, 0xff)
		b = append(b, payload...)
	}
	return b, nil
}

// parsePlaintext splits a decrypted plaintext (§5.3) into Code, options and
// payload. The options and payload alias p. The option encoding is that of
// RFC 7252 §3.1, decoded strictly: reserved nibble 15 outside the payload
// marker, truncation, option number 0 or above 65535, and a payload marker
// without payload are errors, so that decoding and encoding are inverse.
func parsePlaintext(p []byte) (codes.Code, message.Options, []byte, error) {
	if len(p) == 0 {
		return 0, nil, nil, fmt.Errorf("%w: empty plaintext", ErrMalformed)
	}
	code := codes.Code(p[0])
	rest := p[1:]
	count, err := walkOptions(rest, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	var opts message.Options
	if count > 0 {
		opts = make(message.Options, 0, count)
	}
	end, _ := walkOptions(rest, &opts)
	var payload []byte
	if end < len(rest) {
		payload = rest[end+1:] // skip the 0xff marker
	}
	return code, opts, payload, nil
}

// walkOptions decodes the options in b, appending them to out when out is
// not nil. It returns the number of options, or with out != nil the offset
// of the payload marker (len(b) if there is none).
func walkOptions(b []byte, out *message.Options) (int, error) {
	var num uint32
	count, i := 0, 0
	for i < len(b) {
		if b[i] == 0xff {
			if i+1 == len(b) {
				return 0, fmt.Errorf("%w: payload marker without payload", ErrMalformed)
			}
			break
		}
		delta, length := uint32(b[i]>>4), uint32(b[i]&0x0f)
		i++
		var ok bool
		if delta, i, ok = extended(b, i, delta); !ok {
			return 0, fmt.Errorf("%w: bad option delta", ErrMalformed)
		}
		if length, i, ok = extended(b, i, length); !ok {
			return 0, fmt.Errorf("%w: bad option length", ErrMalformed)
		}
		num += delta
		if num == 0 || num > 0xffff {
			return 0, fmt.Errorf("%w: option number %d", ErrMalformed, num)
		}
		if uint32(len(b)-i) < length {
			return 0, fmt.Errorf("%w: option value truncated", ErrMalformed)
		}
		if out != nil {
			*out = append(*out, message.Option{ID: message.OptionID(num), Value: b[i : i+int(length)]})
		}
		i += int(length)
		count++
	}
	if out != nil {
		return i, nil
	}
	return count, nil
}

// extended resolves an option delta or length nibble (RFC 7252 §3.1).
func extended(b []byte, i int, v uint32) (uint32, int, bool) {
	switch v {
	case 13:
		if i >= len(b) {
			return 0, i, false
		}
		return uint32(b[i]) + 13, i + 1, true
	case 14:
		if i+1 >= len(b) {
			return 0, i, false
		}
		return uint32(b[i])<<8 | uint32(b[i+1]) + 269, i + 2, true
	case 15:
		return 0, i, false
	}
	return v, i, true
}

func isRequestCode(c codes.Code) bool  { return c >= 1 && c <= 31 }
func isResponseCode(c codes.Code) bool { return c >= 64 && c <= 191 }
