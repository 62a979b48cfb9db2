package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// Version is the record format version this package reads and writes
// (record key 1).
const Version = 1

// Type is a record type (record key 2).
//
//	record-type = "enroll" / "checkin" / "overdue" / reserved-type
//	reserved-type = "transfer" / "repossess" / "reset" / "decommission" / "delegate"
//
// docs/records.cddl.
type Type string

// Record types. Enroll, CheckIn and Overdue have typed bodies (EnrollBody,
// CheckInBody, OverdueBody); the ownership types are reserved: valid now,
// their bodies any integer-keyed map until they are defined.
const (
	TypeEnroll       Type = "enroll"
	TypeCheckIn      Type = "checkin"
	TypeOverdue      Type = "overdue"
	TypeTransfer     Type = "transfer"
	TypeRepossess    Type = "repossess"
	TypeReset        Type = "reset"
	TypeDecommission Type = "decommission"
	TypeDelegate     Type = "delegate"
)

// Valid reports whether t is one of the defined record types.
func (t Type) Valid() bool {
	switch t {
	case TypeEnroll, TypeCheckIn, TypeOverdue, TypeTransfer, TypeRepossess,
		TypeReset, TypeDecommission, TypeDelegate:
		return true
	}
	return false
}

// ID is a record id: the SHA-256 of a whole record (the COSE_Sign1 bytes,
// tag included). It is the idempotency key upstream and what the next
// record of the same device names as its predecessor.
//
//	record-id = bstr .size 32   ; SHA-256 of a whole record-cose
//
// docs/records.cddl.
type ID [32]byte

// IDOf returns the id of the record data.
func IDOf(data []byte) ID { return sha256.Sum256(data) }

// String returns id in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// DeviceID identifies a device: the SHA-256 of its IDevID certificate
// (DER).
//
//	device-id = bstr .size 32
//
// docs/records.cddl.
type DeviceID [32]byte

// DeviceIDOf returns the device id of the IDevID certificate der.
func DeviceIDOf(der []byte) DeviceID { return sha256.Sum256(der) }

// String returns d in lower-case hex.
func (d DeviceID) String() string { return hex.EncodeToString(d[:]) }

// Body is a record body (record key 8): integer keys, each value one CBOR
// data item. Parse fills it with canonical encodings; Sign re-encodes the
// values it is given canonically.
//
//	reserved-body = { * int => any }
//
// docs/records.cddl; typed bodies: EnrollBody, CheckInBody, OverdueBody.
type Body map[int64]cbor.RawMessage

// maxTime is 9999-12-31T23:59:59Z, the largest unix-time.
const maxTime = 253402300799

// maxSerial bounds serial-number, in bytes.
const maxSerial = 255

// Record is the payload of a record: one event about one device.
//
//	record = {
//	  1 => 1,                  ; version
//	  2 => record-type,
//	  3 => device-id,          ; SHA-256 of the IDevID certificate (DER)
//	  4 => serial-number,      ; tstr .size (1..255), from the IDevID
//	  5 => unix-time,          ; uint .le 253402300799
//	  6 => seq,                ; uint .ge 1, strictly increasing per gateway key
//	  7 => record-id / null,   ; prev: this device's previous record; null for its first
//	  8 => enroll-body / checkin-body / overdue-body / reserved-body,
//	}
//
// (flattened: in docs/records.cddl the type in key 2 selects the body in
// key 8). DESIGN.md "Records".
type Record struct {
	// Type selects the shape of Body. SetBody sets it.
	Type Type
	// Device is the device id.
	Device DeviceID
	// Serial is the serialNumber of the IDevID subject.
	Serial string
	// Time is when the gateway made the record, in whole seconds:
	// encoding truncates it, parsing returns UTC.
	Time time.Time
	// Seq is the gateway sequence number, from 1.
	Seq uint64
	// Prev is the id of the previous record of this device, nil for the
	// device's first record.
	Prev *ID
	// Body is the type-specific body; SetBody and DecodeBody convert it
	// from and to the typed bodies.
	Body Body
}

// wireRecord is Record as encoded; CoreDet sorts the keys.
type wireRecord struct {
	Version uint64 `cbor:"1,keyasint"`
	Type    string `cbor:"2,keyasint"`
	Device  []byte `cbor:"3,keyasint"`
	Serial  string `cbor:"4,keyasint"`
	Time    uint64 `cbor:"5,keyasint"`
	Seq     uint64 `cbor:"6,keyasint"`
	Prev    []byte `cbor:"7,keyasint"` // nil encodes as null
	Body    Body   `cbor:"8,keyasint"`
}

// MarshalCBOR implements cbor.Marshaler: the record payload in Core
// Deterministic Encoding. It fails, with the sentinel Parse would report,
// on a record Parse would reject: unknown type (ErrType), empty or
// oversized serial, time before 1970 or after 9999, sequence number 0
// (ErrField), a body value that is not one well-formed item or a body that
// does not match its type (ErrBody).
func (r *Record) MarshalCBOR() ([]byte, error) {
	if !r.Type.Valid() {
		return nil, fmt.Errorf("%w: %q", ErrType, r.Type)
	}
	if err := checkSerial(r.Serial); err != nil {
		return nil, err
	}
	t, err := unixTime(r.Time)
	if err != nil {
		return nil, fmt.Errorf("%w: time: %w", ErrField, err)
	}
	if r.Seq == 0 {
		return nil, fmt.Errorf("%w: sequence number 0", ErrField)
	}
	body, err := canonicalBody(r.Body)
	if err != nil {
		return nil, err
	}
	if err := checkBody(r.Type, body); err != nil {
		return nil, err
	}
	w := wireRecord{
		Version: Version,
		Type:    string(r.Type),
		Device:  r.Device[:],
		Serial:  r.Serial,
		Time:    t,
		Seq:     r.Seq,
		Body:    body,
	}
	if r.Prev != nil {
		w.Prev = r.Prev[:]
	}
	b, err := cose.EncMode().Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("record: encode: %w", err)
	}
	return b, nil
}

// UnmarshalCBOR implements cbor.Unmarshaler with the rules of ParsePayload.
func (r *Record) UnmarshalCBOR(data []byte) error {
	p, err := ParsePayload(data)
	if err != nil {
		return err
	}
	*r = *p
	return nil
}

// unixTime converts t to whole seconds since the epoch within unix-time.
func unixTime(t time.Time) (uint64, error) {
	s := t.Unix()
	if s < 0 || s > maxTime {
		return 0, fmt.Errorf("%v outside 1970..9999", t)
	}
	return uint64(s), nil
}

// checkSerial applies serial-number = tstr .size (1..255).
func checkSerial(s string) error {
	if len(s) == 0 || len(s) > maxSerial || !utf8.ValidString(s) {
		return fmt.Errorf("%w: serial-number of %d bytes (want 1..%d bytes of UTF-8)", ErrField, len(s), maxSerial)
	}
	return nil
}

// canonicalBody returns b with every value re-encoded canonically. It
// fails with ErrBody on a value that is not exactly one well-formed item
// and on more pairs than cose.MaxMapPairs.
func canonicalBody(b Body) (Body, error) {
	if len(b) > cose.MaxMapPairs {
		return nil, fmt.Errorf("%w: %d pairs, limit %d", ErrBody, len(b), cose.MaxMapPairs)
	}
	out := make(Body, len(b))
	for k, v := range b {
		c, err := canonical(v)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrBody, k, err)
		}
		out[k] = c
	}
	return out, nil
}

// ParsePayload decodes a record payload (the content of the COSE payload
// bstr) strictly: the payload must be one well-formed CBOR map within
// cose's limits (ErrMalformed) in Core Deterministic Encoding
// (ErrEncoding) with exactly the keys 1..8 (ErrUnknownKey, ErrMissingKey),
// version 1 (ErrVersion), a defined type (ErrType), fields of the right
// type, size and range (ErrField), and a body matching its type (ErrBody).
// The result does not alias data.
func ParsePayload(data []byte) (*Record, error) {
	canon, err := canonical(data)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: re-encoding differs", ErrEncoding)
	}
	// canon is a private copy: the Body values below alias it, not data.
	pairs, err := mapPairs(canon, "payload", ErrMalformed)
	if err != nil {
		return nil, err
	}
	var fields [9][]byte
	for _, p := range pairs {
		k, ok := intValue(p.k)
		if !ok || k < 1 || k > 8 {
			d, _ := cbor.Diagnose(p.k)
			return nil, fmt.Errorf("%w: %s", ErrUnknownKey, d)
		}
		fields[k] = p.v // canonical: keys are unique
	}
	for k := 1; k <= 8; k++ {
		if fields[k] == nil {
			return nil, fmt.Errorf("%w: %d", ErrMissingKey, k)
		}
	}

	if v, ok := uintValue(fields[1]); !ok || v != Version {
		d, _ := cbor.Diagnose(fields[1])
		return nil, fmt.Errorf("%w: %s", ErrVersion, d)
	}
	r := &Record{}
	typ, ok := stringValue(fields[2], majorTstr)
	if !ok {
		return nil, fmt.Errorf("%w: type is not a text string", ErrField)
	}
	if r.Type = Type(typ); !r.Type.Valid() {
		return nil, fmt.Errorf("%w: %q", ErrType, typ)
	}
	dev, ok := stringValue(fields[3], majorBstr)
	if !ok || len(dev) != len(r.Device) {
		return nil, fmt.Errorf("%w: device id is not a 32-byte byte string", ErrField)
	}
	copy(r.Device[:], dev)
	serial, ok := stringValue(fields[4], majorTstr)
	if !ok {
		return nil, fmt.Errorf("%w: serial-number is not a text string", ErrField)
	}
	if err := checkSerial(string(serial)); err != nil {
		return nil, err
	}
	r.Serial = string(serial)
	t, ok := uintValue(fields[5])
	if !ok || t > maxTime {
		return nil, fmt.Errorf("%w: time is not a uint <= %d", ErrField, maxTime)
	}
	r.Time = time.Unix(int64(t), 0).UTC()
	if r.Seq, ok = uintValue(fields[6]); !ok || r.Seq == 0 {
		return nil, fmt.Errorf("%w: sequence number is not a uint >= 1", ErrField)
	}
	if !isNull(fields[7]) {
		prev, ok := stringValue(fields[7], majorBstr)
		if !ok || len(prev) != len(ID{}) {
			return nil, fmt.Errorf("%w: prev is neither null nor a 32-byte byte string", ErrField)
		}
		r.Prev = new(ID)
		copy(r.Prev[:], prev)
	}
	if r.Body, err = decodeBody(fields[8]); err != nil {
		return nil, err
	}
	if err := checkBody(r.Type, r.Body); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeBody splits the encoded body map; keys must be integers that fit
// an int64.
func decodeBody(raw []byte) (Body, error) {
	pairs, err := mapPairs(raw, "body", ErrField)
	if err != nil {
		return nil, err
	}
	b := make(Body, len(pairs))
	for _, p := range pairs {
		k, ok := intValue(p.k)
		if !ok {
			d, _ := cbor.Diagnose(p.k)
			return nil, fmt.Errorf("%w: body key %s is not an int64 integer", ErrField, d)
		}
		b[k] = cbor.RawMessage(p.v)
	}
	return b, nil
}
