package record

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// TypedBody is implemented by the bodies this package defines, one per
// record type (*EnrollBody, *CheckInBody, *OverdueBody, *TransferBody,
// *RepossessBody, *ResetBody, *DecommissionBody, *DelegateBody).
type TypedBody interface {
	// RecordType is the record type the body belongs to.
	RecordType() Type

	encode() (Body, error)
	decode(Body) error
}

// SetBody sets r.Type to b's type and r.Body to b's encoding. It fails with
// ErrBody if b does not match its definition in docs/records.cddl, leaving
// r unchanged.
func (r *Record) SetBody(b TypedBody) error {
	body, err := b.encode()
	if err != nil {
		return err
	}
	if err := b.decode(body); err != nil { // the same rules as Parse
		return err
	}
	r.Type, r.Body = b.RecordType(), body
	return nil
}

// DecodeBody decodes r.Body into b. It fails with ErrType if r is not of
// b's type and with ErrBody if the body does not match the type's
// definition.
func (r *Record) DecodeBody(b TypedBody) error {
	if r.Type != b.RecordType() {
		return fmt.Errorf("%w: record is %q, body is for %q", ErrType, r.Type, b.RecordType())
	}
	body, err := canonicalBody(r.Body)
	if err != nil {
		return err
	}
	return b.decode(body)
}

// checkBody applies the body definition of t to a canonical body.
func checkBody(t Type, b Body) error {
	var tb TypedBody
	switch t {
	case TypeEnroll:
		tb = &EnrollBody{}
	case TypeCheckIn:
		tb = &CheckInBody{}
	case TypeOverdue:
		tb = &OverdueBody{}
	case TypeTransfer:
		tb = &TransferBody{}
	case TypeRepossess:
		tb = &RepossessBody{}
	case TypeReset:
		tb = &ResetBody{}
	case TypeDecommission:
		tb = &DecommissionBody{}
	case TypeDelegate:
		tb = &DelegateBody{}
	default:
		return fmt.Errorf("%w: %q", ErrType, t)
	}
	return tb.decode(b)
}

// fieldReader reads typed values from a canonical body and keeps the first
// error, always wrapping ErrBody.
type fieldReader struct {
	what string
	b    Body
	read []int64
	err  error
}

// get returns the value of key k, or nil if it is absent and optional.
func (f *fieldReader) get(k int64, optional bool) []byte {
	v, ok := f.b[k]
	if !ok {
		if !optional {
			f.fail(k, "missing")
		}
		return nil
	}
	f.read = append(f.read, k)
	return v
}

// fail records the first error.
func (f *fieldReader) fail(k int64, format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s key %d: %s", ErrBody, f.what, k, fmt.Sprintf(format, args...))
	}
}

// uint reads a required uint.
func (f *fieldReader) uint(k int64) uint64 {
	v := f.get(k, false)
	if v == nil {
		return 0
	}
	n, ok := uintValue(v)
	if !ok {
		f.fail(k, "not an unsigned integer")
	}
	return n
}

// optUint reads an optional uint; nil if absent.
func (f *fieldReader) optUint(k int64) *uint64 {
	v := f.get(k, true)
	if v == nil {
		return nil
	}
	n, ok := uintValue(v)
	if !ok {
		f.fail(k, "not an unsigned integer")
	}
	return &n
}

// time reads a unix-time; with nullable, null (and absence, if optional)
// give the zero time.
func (f *fieldReader) time(k int64, optional, nullable bool) time.Time {
	v := f.get(k, optional)
	if v == nil || nullable && isNull(v) {
		return time.Time{}
	}
	n, ok := uintValue(v)
	if !ok || n > maxTime {
		f.fail(k, "not a unix-time (uint <= %d)", maxTime)
		return time.Time{}
	}
	return time.Unix(int64(n), 0).UTC()
}

// text reads a required text string of minLen..maxLen bytes.
func (f *fieldReader) text(k int64, minLen, maxLen int) string {
	v := f.get(k, false)
	if v == nil {
		return ""
	}
	s, ok := stringValue(v, majorTstr)
	if !ok || len(s) < minLen || len(s) > maxLen {
		f.fail(k, "not a text string of %d..%d bytes", minLen, maxLen)
	}
	return string(s)
}

// bytes reads a required byte string of minLen..maxLen bytes.
func (f *fieldReader) bytes(k int64, minLen, maxLen int) []byte {
	v := f.get(k, false)
	if v == nil {
		return nil
	}
	s, ok := stringValue(v, majorBstr)
	if !ok || len(s) < minLen || len(s) > maxLen {
		f.fail(k, "not a byte string of %d..%d bytes", minLen, maxLen)
		return nil
	}
	return slices.Clone(s)
}

// hash reads a required 32-byte byte string.
func (f *fieldReader) hash(k int64) (h [32]byte) {
	copy(h[:], f.bytes(k, 32, 32))
	return h
}

// closed fails on keys that were not read, naming the smallest.
func (f *fieldReader) closed() {
	if f.err != nil || len(f.read) == len(f.b) {
		return
	}
	for _, k := range sortedKeys(f.b) {
		if !slices.Contains(f.read, k) {
			f.fail(k, "not defined")
			return
		}
	}
}

// finish returns the first error.
func (f *fieldReader) finish() error { return f.err }

// sortedKeys returns the keys of b in ascending order.
func sortedKeys(b Body) []int64 {
	keys := make([]int64, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// bodyWriter builds a body and keeps the first error, wrapping ErrBody.
type bodyWriter struct {
	what string
	b    Body
	err  error
}

func newBodyWriter(what string) *bodyWriter { return &bodyWriter{what: what, b: Body{}} }

// fail records the first error.
func (w *bodyWriter) fail(k int64, format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("%w: %s key %d: %s", ErrBody, w.what, k, fmt.Sprintf(format, args...))
	}
}

func (w *bodyWriter) uint(k int64, v uint64) { w.b[k] = appendHead(nil, majorUint, v) }

func (w *bodyWriter) null(k int64) { w.b[k] = cbor.RawMessage{cborNull} }

// time writes a unix-time; the zero time is refused.
func (w *bodyWriter) time(k int64, t time.Time) {
	if t.IsZero() {
		w.fail(k, "zero time")
		return
	}
	s, err := unixTime(t)
	if err != nil {
		w.fail(k, "%v", err)
		return
	}
	w.uint(k, s)
}

// text writes a text string of minLen..maxLen bytes of UTF-8.
func (w *bodyWriter) text(k int64, s string, minLen, maxLen int) {
	if len(s) < minLen || len(s) > maxLen || !utf8.ValidString(s) {
		w.fail(k, "want %d..%d bytes of UTF-8, have %d bytes", minLen, maxLen, len(s))
		return
	}
	w.b[k] = append(appendHead(nil, majorTstr, uint64(len(s))), s...)
}

func (w *bodyWriter) bytes(k int64, b []byte) {
	w.b[k] = append(appendHead(nil, majorBstr, uint64(len(b))), b...)
}

func (w *bodyWriter) boolTrue(k int64) { w.b[k] = cbor.RawMessage{cborTrue} }

// finish returns the body or the first error.
func (w *bodyWriter) finish() (Body, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}
