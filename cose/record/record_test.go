package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/voucher"
)

// baseRecord is a valid record of device A with a minimal body (a
// decommission revoking nothing).
func baseRecord() *Record {
	return &Record{
		Type: TypeDecommission, Device: deviceA, Serial: serialA,
		Time: t0, Seq: 42, Body: Body{2: {0x80}},
	}
}

// TestRoundTrip signs a record of every type, parses and verifies it, and
// checks the record and the typed body come back equal.
func TestRoundTrip(t *testing.T) {
	key := gatewayKey(t)
	prev := IDOf([]byte("previous"))
	tests := []struct {
		name string
		typ  Type
		body TypedBody
		raw  Body
	}{
		{name: "enroll", body: &EnrollBody{
			LDevIDSerial: []byte{0x7f}, LDevIDNotAfter: t0.Add(1000 * time.Hour),
			LDevIDHash: [32]byte{1}, VoucherHash: [32]byte{2}, MASAURL: "https://m", Assertion: voucher.AgentProximity,
		}},
		{name: "enroll re-enrollment", body: &EnrollBody{
			LDevIDSerial: []byte{0x01, 0x00}, LDevIDNotAfter: t0, LDevIDHash: [32]byte{3}, ReEnrollment: true,
		}},
		{name: "checkin full", body: &CheckInBody{
			Uptime: 1 << 40, Firmware: "fw-ü", Battery: ptr(uint8(100)), Reboots: 7,
			OSCORESeq: ptr(uint64(MaxOSCORESeq)), NextDue: time.Unix(maxTime, 0).UTC(),
			Extra: Body{0: raw(t, true), 5: raw(t, map[string]any{"a": []any{}}), 1 << 40: raw(t, nil)},
		}},
		{name: "checkin minimal", body: &CheckInBody{Battery: ptr(uint8(0))}},
		{name: "overdue never checked in", body: &OverdueBody{Due: t0, Missed: 3}},
		{name: "overdue epoch", body: &OverdueBody{LastCheckIn: time.Unix(0, 0).UTC(), Due: t0}},
		{name: "transfer out", body: &TransferBody{Out: true, AuthorizationHash: IDOf([]byte("a")), NewOwner: IDOf([]byte("b")), NotAfter: t0}},
		{name: "transfer in", body: &TransferBody{AuthorizationHash: IDOf([]byte("a")), NewOwner: IDOf([]byte("b")), NotAfter: t0}},
		{name: "repossess", body: &RepossessBody{OrderHash: IDOf([]byte("o")), NoticeUntil: t0}},
		{name: "repossess claimed", body: &RepossessBody{OrderHash: IDOf([]byte("o")), NoticeUntil: t0, Side: RepossessClaimed, NewOwner: IDOf([]byte("b"))}},
		{name: "repossess objected", body: &RepossessBody{OrderHash: IDOf([]byte("o")), NoticeUntil: t0, Side: RepossessObjected, NewOwner: IDOf([]byte("b"))}},
		{name: "repossess out", body: &RepossessBody{OrderHash: IDOf([]byte("o")), NoticeUntil: t0, Side: RepossessOut, NewOwner: IDOf([]byte("b"))}},
		{name: "reset by operator", body: &ResetBody{Initiator: ResetByOperator, Reason: "tenant left", Revoked: [][]byte{{0x01}, {0x7f, 0xff}}}},
		{name: "reset by device", body: &ResetBody{Initiator: ResetByDevice, Revoked: [][]byte{}}},
		{name: "decommission", body: &DecommissionBody{Reason: "end of life", Revoked: [][]byte{{0x42}}}},
		{name: "delegate start", body: &DelegateBody{Delegation: "d1", Sink: "landlord", Until: t0}},
		{name: "delegate end", body: &DelegateBody{End: true, Delegation: "d1", Sink: "landlord", Until: t0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []*ID{nil, &prev} {
				r := baseRecord()
				r.Prev = p
				r.Type, r.Body = tc.typ, tc.raw
				if tc.body != nil {
					if err := r.SetBody(tc.body); err != nil {
						t.Fatal(err)
					}
				}
				data := mustSign(t, key, r)
				s, err := Parse(data)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Verify(&key.PublicKey); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(s.Record, r) {
					t.Fatalf("got\n%+v\nwant\n%+v", s.Record, r)
				}
				if tc.body != nil {
					got := reflect.New(reflect.TypeOf(tc.body).Elem()).Interface().(TypedBody)
					if err := s.Record.DecodeBody(got); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, tc.body) {
						t.Fatalf("body\n%+v\nwant\n%+v", got, tc.body)
					}
				}
				if !bytes.Equal(s.KID(), mustKeyID(t, &key.PublicKey)) {
					t.Fatal("kid is not cose.KeyID of the key")
				}
			}
		})
	}
}

func mustKeyID(tb testing.TB, pub *ecdsa.PublicKey) []byte {
	tb.Helper()
	k, err := cose.KeyID(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestSignTruncatesTime checks that sub-second time is dropped.
func TestSignTruncatesTime(t *testing.T) {
	r := baseRecord()
	r.Time = t0.Add(999 * time.Millisecond).In(time.FixedZone("X", 3600))
	s := mustParse(t, mustSign(t, gatewayKey(t), r))
	if !s.Record.Time.Equal(t0) || s.Record.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v", s.Record.Time, t0)
	}
}

// TestSignCanonicalizesBody checks that Sign re-encodes body values it is
// given in non-deterministic form.
func TestSignCanonicalizesBody(t *testing.T) {
	r := baseRecord()
	r.Type = TypeCheckIn
	r.Body = Body{
		1: {0x18, 0x01},                         // uptime 1 in two bytes
		2: {0x60},                               // firmware ""
		3: {0xf6},                               // battery null
		4: {0x00},                               // reboots
		5: {0xa2, 0x02, 0x00, 0x01, 0x00},       // {2: 0, 1: 0}: keys unsorted
		6: {0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, // 1.5 as float64
	}
	s := mustParse(t, mustSign(t, gatewayKey(t), r))
	want := Body{
		1: {0x01},
		2: {0x60},
		3: {0xf6},
		4: {0x00},
		5: {0xa2, 0x01, 0x00, 0x02, 0x00},
		6: {0xf9, 0x3e, 0x00},
	}
	if !reflect.DeepEqual(s.Record.Body, want) {
		t.Fatalf("body %x, want %x", s.Record.Body, want)
	}
}

// TestSignErrors checks that Sign refuses what Parse would refuse, with
// the same sentinel.
func TestSignErrors(t *testing.T) {
	key := gatewayKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    any
		mutate func(*Record)
		want   error
	}{
		{name: "unknown type", mutate: func(r *Record) { r.Type = "rekey" }, want: ErrType},
		{name: "empty type", mutate: func(r *Record) { r.Type = "" }, want: ErrType},
		{name: "empty serial", mutate: func(r *Record) { r.Serial = "" }, want: ErrField},
		{name: "long serial", mutate: func(r *Record) { r.Serial = string(make([]byte, 256)) }, want: ErrField},
		{name: "invalid UTF-8 serial", mutate: func(r *Record) { r.Serial = "\xff" }, want: ErrField},
		{name: "zero time", mutate: func(r *Record) { r.Time = time.Time{} }, want: ErrField},
		{name: "time before 1970", mutate: func(r *Record) { r.Time = time.Unix(-1, 0) }, want: ErrField},
		{name: "time after 9999", mutate: func(r *Record) { r.Time = time.Unix(maxTime+1, 0) }, want: ErrField},
		{name: "seq 0", mutate: func(r *Record) { r.Seq = 0 }, want: ErrField},
		{name: "body value not CBOR", mutate: func(r *Record) { r.Body = Body{1: {0x18}} }, want: ErrBody},
		{name: "body value two items", mutate: func(r *Record) { r.Body = Body{1: {0x01, 0x02}} }, want: ErrBody},
		{name: "body value empty", mutate: func(r *Record) { r.Body = Body{1: {}} }, want: ErrBody},
		{name: "typed body missing", mutate: func(r *Record) { r.Type = TypeCheckIn }, want: ErrBody},
		{name: "P-384 key", key: p384, want: ErrKey},
		{name: "Ed25519 key", key: edKey, want: ErrKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := baseRecord()
			if tc.mutate != nil {
				tc.mutate(r)
			}
			var err error
			switch k := tc.key.(type) {
			case nil:
				_, err = Sign(rand.Reader, key, r)
			case *ecdsa.PrivateKey:
				_, err = Sign(rand.Reader, k, r)
			case ed25519.PrivateKey:
				_, err = Sign(rand.Reader, k, r)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Sign(rand.Reader, nil, baseRecord()); !errors.Is(err, ErrKey) {
		t.Fatalf("nil key: %v", err)
	}
}

// TestSignLowS checks that every signature Sign makes is low-S.
func TestSignLowS(t *testing.T) {
	key := gatewayKey(t)
	for i := range 64 {
		r := baseRecord()
		r.Seq = uint64(i + 1)
		data := mustSign(t, key, r)
		if !isLowS(data[len(data)-32:]) {
			t.Fatalf("signature %d is high-S", i)
		}
	}
}

// TestSetBodyErrors checks the typed bodies' encoding rules.
func TestSetBodyErrors(t *testing.T) {
	okEnroll := func() *EnrollBody {
		return &EnrollBody{LDevIDSerial: []byte{1}, LDevIDNotAfter: t0, MASAURL: "https://m"}
	}
	tests := []struct {
		name string
		body TypedBody
	}{
		{name: "enroll empty serial", body: func() TypedBody { e := okEnroll(); e.LDevIDSerial = nil; return e }()},
		{name: "enroll 21-byte serial", body: func() TypedBody { e := okEnroll(); e.LDevIDSerial = make([]byte, 21); e.LDevIDSerial[0] = 1; return e }()},
		{name: "enroll serial leading zero", body: func() TypedBody { e := okEnroll(); e.LDevIDSerial = []byte{0, 1}; return e }()},
		{name: "enroll zero not-after", body: func() TypedBody { e := okEnroll(); e.LDevIDNotAfter = time.Time{}; return e }()},
		{name: "enroll no MASA URL", body: func() TypedBody { e := okEnroll(); e.MASAURL = ""; return e }()},
		{name: "enroll assertion 4", body: func() TypedBody { e := okEnroll(); e.Assertion = 4; return e }()},
		{name: "re-enrollment with voucher", body: func() TypedBody { e := okEnroll(); e.ReEnrollment = true; return e }()},
		{name: "checkin battery 101", body: &CheckInBody{Battery: ptr(uint8(101))}},
		{name: "checkin OSCORE seq 2^40", body: &CheckInBody{OSCORESeq: ptr(uint64(MaxOSCORESeq + 1))}},
		{name: "checkin next due before 1970", body: &CheckInBody{NextDue: time.Unix(-5, 0)}},
		{name: "checkin invalid UTF-8 firmware", body: &CheckInBody{Firmware: "\xc3"}},
		{name: "checkin extra key 1", body: &CheckInBody{Extra: Body{1: raw(t, 1)}}},
		{name: "checkin extra key 4", body: &CheckInBody{Extra: Body{4: raw(t, 1)}}},
		{name: "checkin extra key -1", body: &CheckInBody{Extra: Body{-1: raw(t, 1)}}},
		{name: "checkin extra key -3", body: &CheckInBody{Extra: Body{-3: raw(t, 1)}}},
		{name: "checkin extra value malformed", body: &CheckInBody{Extra: Body{5: {0x5f}}}},
		{name: "overdue zero due", body: &OverdueBody{}},
		{name: "overdue last check-in after 9999", body: &OverdueBody{LastCheckIn: time.Unix(maxTime+1, 0), Due: t0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := baseRecord()
			before := *r
			if err := r.SetBody(tc.body); !errors.Is(err, ErrBody) {
				t.Fatalf("got %v, want ErrBody", err)
			}
			if !reflect.DeepEqual(*r, before) {
				t.Fatal("failed SetBody changed the record")
			}
		})
	}
}

// TestLifecycleBodiesRefuse checks the lifecycle bodies' rules on both
// SetBody and Parse.
func TestLifecycleBodiesRefuse(t *testing.T) {
	r := baseRecord()
	for _, tc := range []struct {
		name string
		body TypedBody
	}{
		{"transfer zero not-after", &TransferBody{Out: true}},
		{"reset unknown initiator", &ResetBody{Initiator: "landlord", Revoked: [][]byte{}}},
		{"reset serial with leading zero", &ResetBody{Initiator: ResetByOperator, Revoked: [][]byte{{0x00, 0x01}}}},
		{"decommission empty serial", &DecommissionBody{Revoked: [][]byte{{}}}},
		{"delegate without id", &DelegateBody{Sink: "s", Until: t0}},
		{"repossess zero notice", &RepossessBody{}},
		{"repossess unknown side", &RepossessBody{OrderHash: IDOf([]byte("o")), NoticeUntil: t0, Side: "in"}},
	} {
		if err := r.SetBody(tc.body); !errors.Is(err, ErrBody) {
			t.Errorf("%s: got %v, want ErrBody", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name string
		typ  Type
		body Body
	}{
		{"transfer direction", TypeTransfer, Body{1: raw(t, "up"), 2: raw(t, make([]byte, 32)), 3: raw(t, make([]byte, 32)), 4: raw(t, 1)}},
		{"transfer extra key", TypeTransfer, Body{1: raw(t, "in"), 2: raw(t, make([]byte, 32)), 3: raw(t, make([]byte, 32)), 4: raw(t, 1), 5: raw(t, 1)}},
		{"reset revoked not a list", TypeReset, Body{1: raw(t, "device"), 3: raw(t, 1)}},
		{"decommission missing revoked", TypeDecommission, Body{1: raw(t, "why")}},
		{"repossess unknown side", TypeRepossess, Body{1: raw(t, make([]byte, 32)), 2: raw(t, 1), 3: raw(t, "stolen"), 4: raw(t, make([]byte, 32))}},
		{"repossess side without owner", TypeRepossess, Body{1: raw(t, make([]byte, 32)), 2: raw(t, 1), 3: raw(t, "out")}},
		{"repossess owner without side", TypeRepossess, Body{1: raw(t, make([]byte, 32)), 2: raw(t, 1), 4: raw(t, make([]byte, 32))}},
		{"delegate until null", TypeDelegate, Body{1: raw(t, "end"), 2: raw(t, "d"), 3: raw(t, "s"), 4: raw(t, nil)}},
	} {
		r := baseRecord()
		r.Type, r.Body = tc.typ, tc.body
		if _, err := Parse(mustSignRaw(t, gatewayKey(t), r)); !errors.Is(err, ErrBody) {
			t.Errorf("%s: got %v, want ErrBody", tc.name, err)
		}
	}
}

// TestDecodeBodyErrors checks DecodeBody's type and shape checks.
func TestDecodeBodyErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  Type
		body Body
		into TypedBody
		want error
	}{
		{name: "wrong type", typ: TypeCheckIn, body: Body{}, into: &EnrollBody{}, want: ErrType},
		{name: "lifecycle type", typ: TypeTransfer, body: Body{}, into: &OverdueBody{}, want: ErrType},
		{name: "overdue extra key", typ: TypeOverdue, body: Body{1: {cborNull}, 2: {0x01}, 3: {0x01}, 4: {0x01}}, into: &OverdueBody{}, want: ErrBody},
		{name: "overdue missing key", typ: TypeOverdue, body: Body{1: {cborNull}, 2: {0x01}}, into: &OverdueBody{}, want: ErrBody},
		{name: "overdue due null", typ: TypeOverdue, body: Body{1: {cborNull}, 2: {cborNull}, 3: {0x01}}, into: &OverdueBody{}, want: ErrBody},
		{name: "overdue missed negative", typ: TypeOverdue, body: Body{1: {cborNull}, 2: {0x01}, 3: {0x20}}, into: &OverdueBody{}, want: ErrBody},
		{name: "enroll re-enrollment false", typ: TypeEnroll, body: Body{1: {0x41, 0x01}, 2: {0x01}, 7: append([]byte{0x58, 0x20}, make([]byte, 32)...), 6: {cborFalse}}, into: &EnrollBody{}, want: ErrBody},
		{name: "enroll hash 31 bytes", typ: TypeEnroll, body: Body{1: {0x41, 0x01}, 2: {0x01}, 7: append([]byte{0x58, 0x1f}, make([]byte, 31)...), 6: {cborTrue}}, into: &EnrollBody{}, want: ErrBody},
		{name: "enroll re-enrollment with voucher hash", typ: TypeEnroll, body: Body{1: {0x41, 0x01}, 2: {0x01}, 7: append([]byte{0x58, 0x20}, make([]byte, 32)...), 6: {cborTrue}, 3: append([]byte{0x58, 0x20}, make([]byte, 32)...)}, into: &EnrollBody{}, want: ErrBody},
		{name: "checkin battery text", typ: TypeCheckIn, body: Body{1: {0x01}, 2: {0x60}, 3: {0x61, 'x'}, 4: {0x01}}, into: &CheckInBody{}, want: ErrBody},
		{name: "checkin battery absent", typ: TypeCheckIn, body: Body{1: {0x01}, 2: {0x60}, 4: {0x01}}, into: &CheckInBody{}, want: ErrBody},
		{name: "checkin firmware bytes", typ: TypeCheckIn, body: Body{1: {0x01}, 2: {0x40}, 3: {cborNull}, 4: {0x01}}, into: &CheckInBody{}, want: ErrBody},
		{name: "checkin unknown negative key", typ: TypeCheckIn, body: Body{1: {0x01}, 2: {0x60}, 3: {cborNull}, 4: {0x01}, -3: {0x01}}, into: &CheckInBody{}, want: ErrBody},
		{name: "checkin value malformed", typ: TypeCheckIn, body: Body{1: {0x1b}, 2: {0x60}, 3: {cborNull}, 4: {0x01}}, into: &CheckInBody{}, want: ErrBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := baseRecord()
			r.Type, r.Body = tc.typ, tc.body
			if err := r.DecodeBody(tc.into); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestTypeValid lists the defined types.
func TestTypeValid(t *testing.T) {
	for _, typ := range []Type{TypeEnroll, TypeCheckIn, TypeOverdue, TypeTransfer, TypeRepossess, TypeReset, TypeDecommission, TypeDelegate} {
		if !typ.Valid() {
			t.Errorf("%q not valid", typ)
		}
	}
	for _, typ := range []Type{"", "Enroll", "check-in", "checkin ", "rekey"} {
		if typ.Valid() {
			t.Errorf("%q valid", typ)
		}
	}
}

// TestUnmarshalCBOR embeds a record payload in another structure.
func TestUnmarshalCBOR(t *testing.T) {
	r := baseRecord()
	payload, err := r.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	var outer struct {
		R Record `cbor:"1,keyasint"`
	}
	if err := cose.Unmarshal(append([]byte{0xa1, 0x01}, payload...), &outer); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&outer.R, r) {
		t.Fatalf("got %+v", outer.R)
	}
	bad := append([]byte{0xa1, 0x01}, payload...)
	bad = append(bad[:len(bad)-3], 0x01) // body {2: []} (a1 02 80) -> 1
	if err := cose.Unmarshal(bad, &outer); !errors.Is(err, ErrField) {
		t.Fatalf("got %v, want ErrField", err)
	}
}

// TestIDs checks the id helpers.
func TestIDs(t *testing.T) {
	if got := DeviceIDOf([]byte("abc")).String(); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal(got)
	}
	if got := IDOf(nil).String(); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatal(got)
	}
	var _ cbor.Marshaler = (*Record)(nil)
	var _ cbor.Unmarshaler = (*Record)(nil)
}
