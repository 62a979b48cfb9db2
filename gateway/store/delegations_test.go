package store

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// A delegation's window of the outbox: from the records committed after it
// starts (its own start record included) to its end record, of its device
// only; its cursor starts at the window.
func TestDelegationWindow(t *testing.T) {
	s := open(t, "")
	ctx := ctxT(t)
	a, b := dev(1), dev(2)
	heads := map[DeviceID][]byte{}
	seq := uint64(0)
	put := func(d Device, typ string, more func(tx *Tx) error) Record {
		t.Helper()
		seq++
		r := rec(seq, d, typ)
		err := s.Update(ctx, func(tx *Tx) error {
			if more != nil {
				if err := more(tx); err != nil {
					return err
				}
			}
			return tx.AppendRecord(r, heads[d.ID])
		})
		if err != nil {
			t.Fatal(err)
		}
		heads[d.ID] = r.ID[:]
		return r
	}
	if err := s.Update(ctx, func(tx *Tx) error { return errors.Join(tx.PutDevice(a), tx.PutDevice(b)) }); err != nil {
		t.Fatal(err)
	}
	put(a, "enroll", nil)
	put(b, "enroll", nil)
	token := sha256.Sum256([]byte("token"))
	d := Delegation{ID: "d1", Device: a.ID, Sink: "delegate-d1", Config: "{}", Until: time.Now().Add(time.Hour), TokenHash: token[:]}
	start := put(a, "delegate", func(tx *Tx) error { return tx.AddDelegation(d) })
	put(b, "checkin", nil)
	mid := put(a, "checkin", nil)
	var ended bool
	end := put(a, "delegate", func(tx *Tx) error {
		var err error
		ended, err = tx.EndDelegation("d1")
		return err
	})
	put(a, "checkin", nil) // after the end: not delegated
	if !ended {
		t.Fatal("EndDelegation: not active")
	}
	got, err := s.Delegation(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if got.EndedAt.IsZero() || got.FromPos != 2 || got.EndPos != 6 {
		t.Fatalf("delegation %+v: want from 2, end 6", got)
	}
	es, err := s.OutboxNextFor(ctx, "delegate-d1", a.ID, got.EndPos, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range es {
		seqs = append(seqs, e.Seq)
	}
	if want := []uint64{start.Seq, mid.Seq, end.Seq}; len(seqs) != 3 || seqs[0] != want[0] || seqs[1] != want[1] || seqs[2] != want[2] {
		t.Fatalf("delegated %v, want %v", seqs, want)
	}
	if n, _, err := s.OutboxBacklogFor(ctx, "delegate-d1", a.ID, got.EndPos); err != nil || n != 3 {
		t.Fatalf("backlog %d, %v", n, err)
	}
	if ok, err := func() (bool, error) {
		var ok bool
		err := s.Update(ctx, func(tx *Tx) error { var e error; ok, e = tx.EndDelegation("d1"); return e })
		return ok, err
	}(); err != nil || ok {
		t.Fatalf("ending twice: %v, %v", ok, err)
	}
	if act, err := s.DelegationByToken(ctx, token[:]); err != nil || len(act) != 0 {
		t.Fatalf("an ended delegation's token still reads: %v, %v", act, err)
	}
	if all, err := s.Delegations(ctx, &a.ID, false); err != nil || len(all) != 1 {
		t.Fatalf("delegations of a: %v, %v", all, err)
	}
	if none, err := s.Delegations(ctx, &b.ID, false); err != nil || len(none) != 0 {
		t.Fatalf("delegations of b: %v, %v", none, err)
	}
	if _, err := s.Delegation(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown delegation: %v", err)
	}
}
