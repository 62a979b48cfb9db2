package record

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/voucher"
)

// diagMode renders CBOR diagnostic notation (RFC 8949 §8) with byte
// strings in hex.
var diagMode = func() cbor.DiagMode {
	dm, err := cbor.DiagOptions{
		ByteStringEncoding: cbor.ByteStringBase16Encoding,
		MaxNestedLevels:    cose.MaxNestedLevels,
		MaxArrayElements:   cose.MaxArrayElements,
		MaxMapPairs:        cose.MaxMapPairs,
	}.DiagMode()
	if err != nil {
		panic("record: bad diagnostic options: " + err.Error())
	}
	return dm
}()

// recordKeyNames names the record keys in renderings.
var recordKeyNames = map[int64]string{
	1: "version", 2: "type", 3: "device", 4: "serial", 5: "time", 6: "seq", 7: "prev", 8: "body",
}

// bodyKeyNames names the keys of the typed bodies in renderings.
var bodyKeyNames = map[Type]map[int64]string{
	TypeEnroll: {
		enrollLDevIDSerial: "ldevid-serial", enrollLDevIDNotAfter: "ldevid-not-after",
		enrollVoucherHash: "voucher-hash", enrollMASAURL: "masa-url", enrollAssertion: "assertion",
		enrollReEnrollment: "re-enrollment", enrollLDevIDHash: "ldevid-hash",
	},
	TypeCheckIn: {
		checkInUptime: "uptime", checkInFirmware: "firmware", checkInBattery: "battery",
		checkInReboots: "reboots", checkInOSCORESeq: "oscore-seq", checkInNextDue: "next-due",
	},
	TypeOverdue: {overdueLastCheckIn: "last-checkin", overdueDue: "due", overdueMissed: "missed"},
}

// note returns a comment for a value in the diagnostic rendering, or "".
type note func(v []byte) string

// timeNote renders a unix-time in RFC 3339.
func timeNote(v []byte) string {
	t, ok := uintValue(v)
	if !ok || t > maxTime {
		return ""
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}

// assertionNote renders a voucher assertion by name.
func assertionNote(v []byte) string {
	a, ok := uintValue(v)
	if !ok || a > uint64(voucher.AgentProximity) {
		return ""
	}
	return voucher.Assertion(a).String()
}

// recordNotes and bodyNotes annotate values in the diagnostic rendering.
var (
	recordNotes = map[int64]note{5: timeNote}
	bodyNotes   = map[Type]map[int64]note{
		TypeEnroll:  {enrollLDevIDNotAfter: timeNote, enrollAssertion: assertionNote},
		TypeCheckIn: {checkInNextDue: timeNote},
		TypeOverdue: {overdueLastCheckIn: timeNote, overdueDue: timeNote},
	}
)

// Diagnostic renders a COSE_Sign1 message in CBOR extended diagnostic
// notation (RFC 8949 §8, RFC 8610 Appendix G): the envelope with the
// protected header and the payload shown decoded as embedded CBOR
// (<<...>>), the record and body keys annotated with their names, times
// with their RFC 3339 form and assertions with their names (as /comments/),
// one pair per line. It is for `tumbler record
// inspect`, so it renders what it can: data must be a COSE_Sign1 that
// cose.Parse accepts (else ErrMalformed), but the payload need not be a
// valid record (a payload that is not well-formed CBOR is shown as hex).
func Diagnostic(data []byte) (string, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// cose.Parse checked the envelope: tag 18 (1 byte), array(4) (1 byte),
	// then four well-formed items in preferred serialization.
	items := make([][]byte, 4)
	rest := data[2:]
	for i := range items {
		next, err := skipItem(rest, 1)
		if err != nil {
			return "", err
		}
		items[i], rest = rest[:len(rest)-len(next)], next
	}
	var b strings.Builder
	b.WriteString("18([\n  / protected / ")
	writeEmbedded(&b, m.RawProtected(), "  ", nil)
	b.WriteString(",\n  / unprotected / ")
	if err := writeDiag(&b, items[1]); err != nil {
		return "", err
	}
	b.WriteString(",\n  / payload / ")
	writeEmbedded(&b, m.Payload(), "  ", recordLabels)
	b.WriteString(",\n  / signature / ")
	if err := writeDiag(&b, items[3]); err != nil {
		return "", err
	}
	b.WriteString("\n])\n")
	return b.String(), nil
}

// labels names the keys of a map and of its nested maps, and annotates
// values.
type labels struct {
	names map[int64]string
	notes map[int64]note
	// child returns the labels of the value of key k, given the map's
	// pairs; nil renders the value on one line.
	child func(k int64, pairs []pair) *labels
}

// recordLabels labels a record payload; its body (key 8) is expanded too,
// labelled by the record's type.
var recordLabels = &labels{
	names: recordKeyNames,
	notes: recordNotes,
	child: func(k int64, pairs []pair) *labels {
		if k != 8 {
			return nil
		}
		var t Type
		for _, p := range pairs {
			if kk, ok := intValue(p.k); ok && kk == 2 {
				s, _ := stringValue(p.v, majorTstr)
				t = Type(s)
			}
		}
		return &labels{names: bodyKeyNames[t], notes: bodyNotes[t]}
	},
}

// writeEmbedded writes a byte string whose content is CBOR as <<item>>,
// expanding it as a labelled map if lb is not nil; content that is not one
// well-formed item within cose's limits is written as h'...'.
func writeEmbedded(b *strings.Builder, content []byte, indent string, lb *labels) {
	if err := cose.DecMode().Wellformed(content); err != nil {
		b.WriteString("h'" + hex.EncodeToString(content) + "'")
		return
	}
	var inner strings.Builder
	if err := writeItem(&inner, content, indent, lb); err != nil {
		b.WriteString("h'" + hex.EncodeToString(content) + "'")
		return
	}
	b.WriteString("<<" + inner.String() + ">>")
}

// writeItem writes one well-formed item: a non-empty map with labels one
// pair per line, anything else on one line.
func writeItem(b *strings.Builder, item []byte, indent string, lb *labels) error {
	if lb == nil {
		return writeDiag(b, item)
	}
	pairs, err := mapPairs(item, "item", ErrMalformed)
	if err != nil || len(pairs) == 0 {
		return writeDiag(b, item)
	}
	inner := indent + "  "
	b.WriteString("{\n")
	for i, p := range pairs {
		b.WriteString(inner)
		k, isInt := intValue(p.k)
		if name, ok := lb.names[k]; isInt && ok {
			b.WriteString("/ " + name + " / ")
		}
		if err := writeDiag(b, p.k); err != nil {
			return err
		}
		b.WriteString(": ")
		var child *labels
		if isInt && lb.child != nil {
			child = lb.child(k, pairs)
		}
		if err := writeItem(b, p.v, inner, child); err != nil {
			return err
		}
		if n := lb.notes[k]; isInt && n != nil {
			if c := n(p.v); c != "" {
				b.WriteString(" / " + c + " /")
			}
		}
		if i < len(pairs)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(indent + "}")
	return nil
}

// writeDiag writes one item in diagnostic notation on one line.
func writeDiag(b *strings.Builder, item []byte) error {
	s, err := diagMode.Diagnose(item)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	b.WriteString(s)
	return nil
}

// jsonRecord is the JSON view of a record; fields are in this order.
type jsonRecord struct {
	RecordID string          `json:"record_id"`
	KID      string          `json:"kid"`
	Alg      string          `json:"alg"`
	Version  int             `json:"version"`
	Type     Type            `json:"type"`
	Device   string          `json:"device"`
	Serial   string          `json:"serial"`
	Time     string          `json:"time"`
	Seq      uint64          `json:"seq"`
	Prev     *string         `json:"prev"`
	Body     json.RawMessage `json:"body"`
}

// JSON renders a parsed record as indented JSON for `tumbler record
// inspect --json`:
//
//	{"record_id": hex, "kid": hex, "alg": "ES256", "version": 1,
//	 "type": ..., "device": hex, "serial": ..., "time": RFC 3339,
//	 "seq": n, "prev": hex / null, "body": {...}}
//
// Body keys are the integer keys as decimal strings, in the record's
// (canonical) order. Body values map CBOR to JSON: integers to numbers,
// text to strings, byte strings to lower-case hex strings, arrays and maps
// alike (map keys: text as is, integers in decimal, others in diagnostic
// notation), null, booleans; floats to numbers ("NaN", "Infinity",
// "-Infinity" as strings), a tag to {"tag": n, "value": v}, other simple
// values to "simple(n)" or "undefined". The JSON is a view: the CBOR is
// the record.
func JSON(s *Signed) ([]byte, error) {
	if s == nil || s.Record == nil || s.Sign1 == nil {
		return nil, fmt.Errorf("%w: nil record", ErrMalformed)
	}
	r := s.Record
	body, err := canonicalBody(r.Body)
	if err != nil {
		return nil, err
	}
	var bb bytes.Buffer
	bb.WriteByte('{')
	for i, k := range bodyOrder(body) {
		if i > 0 {
			bb.WriteByte(',')
		}
		if err := writeJSONString(&bb, strconv.FormatInt(k, 10)); err != nil {
			return nil, err
		}
		bb.WriteByte(':')
		if _, err := writeJSON(&bb, body[k], 0); err != nil {
			return nil, err
		}
	}
	bb.WriteByte('}')
	v := jsonRecord{
		RecordID: s.ID.String(),
		KID:      hex.EncodeToString(s.KID()),
		Alg:      "ES256",
		Version:  Version,
		Type:     r.Type,
		Device:   r.Device.String(),
		Serial:   r.Serial,
		Time:     r.Time.UTC().Format(time.RFC3339),
		Seq:      r.Seq,
		Body:     bb.Bytes(),
	}
	if r.Prev != nil {
		p := r.Prev.String()
		v.Prev = &p
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // a view for people: keep & < > as they are
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("record: JSON: %w", err)
	}
	return out.Bytes(), nil
}

// bodyOrder returns the keys of b in canonical CBOR order: 0, 1, 2, ...,
// then -1, -2, ...
func bodyOrder(b Body) []int64 {
	keys := sortedKeys(b)
	neg := 0
	for neg < len(keys) && keys[neg] < 0 {
		neg++
	}
	out := append([]int64{}, keys[neg:]...)
	for i := neg - 1; i >= 0; i-- {
		out = append(out, keys[i])
	}
	return out
}

// writeJSON writes the first item of data (well-formed, canonical) as JSON
// and returns the bytes after it.
func writeJSON(bb *bytes.Buffer, data []byte, depth int) ([]byte, error) {
	if depth > cose.MaxNestedLevels {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, cose.MaxNestedLevels)
	}
	h, err := readHead(data)
	if err != nil {
		return nil, err
	}
	rest := data[h.size:]
	switch h.major {
	case majorUint:
		bb.WriteString(strconv.FormatUint(h.arg, 10))
	case majorNint:
		if h.arg == math.MaxUint64 {
			bb.WriteString("-18446744073709551616")
		} else {
			bb.WriteString("-" + strconv.FormatUint(h.arg+1, 10))
		}
	case majorBstr, majorTstr:
		if h.arg > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: truncated string", ErrMalformed)
		}
		s := rest[:h.arg]
		str := string(s)
		if h.major == majorBstr {
			str = hex.EncodeToString(s)
		}
		if err := writeJSONString(bb, str); err != nil {
			return nil, err
		}
		rest = rest[h.arg:]
	case majorArray:
		bb.WriteByte('[')
		for i := range h.arg {
			if i > 0 {
				bb.WriteByte(',')
			}
			if rest, err = writeJSON(bb, rest, depth+1); err != nil {
				return nil, err
			}
		}
		bb.WriteByte(']')
	case majorMap:
		bb.WriteByte('{')
		for i := range h.arg {
			if i > 0 {
				bb.WriteByte(',')
			}
			next, err := skipItem(rest, depth+1)
			if err != nil {
				return nil, err
			}
			if err := writeJSONString(bb, jsonKey(rest[:len(rest)-len(next)])); err != nil {
				return nil, err
			}
			bb.WriteByte(':')
			if rest, err = writeJSON(bb, next, depth+1); err != nil {
				return nil, err
			}
		}
		bb.WriteByte('}')
	case majorTag:
		bb.WriteString(`{"tag":` + strconv.FormatUint(h.arg, 10) + `,"value":`)
		if rest, err = writeJSON(bb, rest, depth+1); err != nil {
			return nil, err
		}
		bb.WriteByte('}')
	default:
		if err := writeJSONSimple(bb, data[:h.size], h); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

// writeJSONSimple writes a major type 7 item.
func writeJSONSimple(bb *bytes.Buffer, item []byte, h head) error {
	switch {
	case item[0] == cborFalse:
		bb.WriteString("false")
	case item[0] == cborTrue:
		bb.WriteString("true")
	case item[0] == cborNull:
		bb.WriteString("null")
	case item[0] == 0xf7:
		bb.WriteString(`"undefined"`)
	case h.ai < 25:
		bb.WriteString(`"simple(` + strconv.FormatUint(h.arg, 10) + `)"`)
	default:
		var f float64
		if err := cose.DecMode().Unmarshal(item, &f); err != nil {
			return fmt.Errorf("%w: float: %w", ErrMalformed, err)
		}
		switch {
		case math.IsNaN(f):
			bb.WriteString(`"NaN"`)
		case math.IsInf(f, 1):
			bb.WriteString(`"Infinity"`)
		case math.IsInf(f, -1):
			bb.WriteString(`"-Infinity"`)
		default:
			bb.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	return nil
}

// jsonKey renders a map key as a JSON object name.
func jsonKey(k []byte) string {
	if n, ok := intValue(k); ok {
		return strconv.FormatInt(n, 10)
	}
	if s, ok := stringValue(k, majorTstr); ok {
		return string(s)
	}
	d, err := diagMode.Diagnose(k)
	if err != nil {
		return "h'" + hex.EncodeToString(k) + "'"
	}
	return d
}

// writeJSONString writes s as a JSON string, without HTML escaping.
func writeJSONString(bb *bytes.Buffer, s string) error {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("record: JSON: %w", err)
	}
	bb.Write(bytes.TrimSuffix(tmp.Bytes(), []byte{'\n'}))
	return nil
}
