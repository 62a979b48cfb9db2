package meshcop

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestParseRelay(t *testing.T) {
	r, err := ParseRelay(readHex(t, "seed-rly-rx.hex"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Relay{
		JoinerUDPPort:       993,
		JoinerIID:           [8]byte{0xd4, 0x5e, 0x64, 0xfa, 0x83, 0xf8, 0x1c, 0xf7},
		JoinerRouterLocator: 0x0400,
		Payload:             []byte{0x16, 0x03, 0x01, 0x00, 0x00},
	}
	if !relayEqual(r, want) {
		t.Fatalf("%+v, want %+v", r, want)
	}
	if JoinerIDFromIID(r.JoinerIID).String() != "d65e64fa83f81cf7" {
		t.Fatalf("joiner ID %v", JoinerIDFromIID(r.JoinerIID))
	}
	// OpenThread's Joiner Router order round-trips through RxTLVs.
	rx, err := r.RxTLVs().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rx, readHex(t, "seed-rly-rx.hex")) {
		t.Fatalf("RxTLVs %x", rx)
	}
	tx, err := ParseRelay(readHex(t, "seed-rly-tx-kek.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tx.KEK) != 16 {
		t.Fatalf("KEK %x", tx.KEK)
	}
	b, err := tx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, readHex(t, "seed-rly-tx-kek.hex")) {
		t.Fatalf("RLY_TX order %x", b)
	}
	for _, missing := range []Type{TypeJoinerUDPPort, TypeJoinerIID, TypeJoinerRouterLocator, TypeJoinerDTLSEncapsulation} {
		ts, _ := Decode(readHex(t, "seed-rly-rx.hex"))
		b, _ := ts.without(missing).Encode()
		if _, err := ParseRelay(b); !errors.Is(err, ErrMissing) {
			t.Errorf("without %v: %v, want ErrMissing", missing, err)
		}
	}
}

func TestCommissioningMessages(t *testing.T) {
	p, err := ParsePetition(readHex(t, "seed-comm-pet.hex"))
	if err != nil || p.CommissionerID != "Tumbler" {
		t.Fatalf("petition %+v %v", p, err)
	}
	pr, err := ParsePetitionResult(readHex(t, "seed-comm-pet-rsp.hex"))
	if err != nil || pr.State != StateAccept || pr.SessionID != 0x1234 || pr.CommissionerID != "Tumbler" {
		t.Fatalf("petition result %+v %v", pr, err)
	}
	rej, err := ParsePetitionResult(readHex(t, "seed-comm-pet-reject.hex"))
	if err != nil || rej.State != StateReject || rej.CommissionerID != "OtherID" {
		t.Fatalf("petition reject %+v %v", rej, err)
	}
	if _, err := ParsePetitionResult([]byte{0x10, 0x01, 0x01}); !errors.Is(err, ErrMissing) {
		t.Fatalf("accept without session: %v", err)
	}
	ka, err := ParseKeepAlive(readHex(t, "seed-comm-ka-resign.hex"))
	if err != nil || ka.State != StateReject || ka.SessionID != 0x1234 {
		t.Fatalf("keep-alive %+v %v", ka, err)
	}
	if _, err := ParseKeepAlive([]byte{0x10, 0x01, 0x05, 0x0b, 0x02, 0, 1}); !errors.Is(err, ErrValue) {
		t.Fatalf("State 5: %v", err)
	}
	cs, err := ParseCommissionerSet(readHex(t, "seed-comm-set-ae-unknown.hex"))
	if err != nil || !cs.AESteering.AllowsAll() || cs.JoinerUDPPort != 1000 || len(cs.Other) != 1 {
		t.Fatalf("commissioner set %+v %v", cs, err)
	}
	if _, err := ParseCommissionerSet([]byte{0x0b, 0x02, 0, 1, 0x12, 0x02, 0, 0}); !errors.Is(err, ErrValue) {
		t.Fatalf("port 0: %v", err)
	}
	for _, m := range []interface{ MarshalBinary() ([]byte, error) }{p, pr, rej, ka, cs, &StateResult{State: StateAccept}} {
		if _, err := m.MarshalBinary(); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
	}
}

func relayEqual(a, b *Relay) bool {
	return a.JoinerUDPPort == b.JoinerUDPPort && a.JoinerIID == b.JoinerIID &&
		a.JoinerRouterLocator == b.JoinerRouterLocator && bytes.Equal(a.Payload, b.Payload) &&
		bytes.Equal(a.KEK, b.KEK) && (a.KEK == nil) == (b.KEK == nil) && tlvsEqual(a.Other, b.Other)
}

func tlvsEqual(a, b TLVs) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Value, b[i].Value) || a[i].extended() != b[i].extended() {
			return false
		}
	}
	return true
}

// normalize makes two decoded messages comparable with reflect.DeepEqual:
// empty and nil byte slices are the same on the wire.
func normalize(v any) any {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch x := f.Interface().(type) {
		case []byte:
			if len(x) == 0 && f.CanSet() {
				f.Set(reflect.Zero(f.Type()))
			}
		case SteeringData:
			if len(x) == 0 && x != nil {
				f.Set(reflect.ValueOf(SteeringData{}))
			}
		case TLVs:
			for j := range x {
				if len(x[j].Value) == 0 {
					x[j].Value = nil
				}
			}
			if len(x) == 0 {
				f.Set(reflect.Zero(f.Type()))
			}
		}
	}
	return v
}
