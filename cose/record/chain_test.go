package record

import (
	"crypto/ecdsa"
	"errors"
	"slices"
	"testing"
)

// link is one record of a test chain.
type link struct {
	dev    DeviceID
	serial string
	seq    uint64
}

// interleaved is a 3-device chain: A B C A B A C B C, seq 1..9.
var interleaved = []link{
	{deviceA, serialA, 1}, {deviceB, serialB, 2}, {deviceC, serialC, 3},
	{deviceA, serialA, 4}, {deviceB, serialB, 5}, {deviceA, serialA, 6},
	{deviceC, serialC, 7}, {deviceB, serialB, 8}, {deviceC, serialC, 9},
}

// chainOpts alters the building of one record of a test chain.
type chainOpts struct {
	key     *ecdsa.PrivateKey // signer, if not the gateway key
	prev    *ID               // forced prev
	noPrev  bool              // forced null prev
	seq     uint64            // forced seq
	serial  string            // forced serial
	skipped bool              // build but do not link (the device head stays)
}

// buildChain signs links in order, each naming its device's previous
// record, with per-index alterations.
func buildChain(tb testing.TB, links []link, alter map[int]chainOpts) []*Signed {
	tb.Helper()
	key := gatewayKey(tb)
	heads := map[DeviceID]ID{}
	var out []*Signed
	for i, l := range links {
		o := alter[i]
		r := &Record{Type: TypeCheckIn, Device: l.dev, Serial: l.serial, Time: t0, Seq: l.seq}
		if err := r.SetBody(&CheckInBody{Uptime: l.seq}); err != nil {
			tb.Fatal(err)
		}
		if h, ok := heads[l.dev]; ok {
			r.Prev = &h
		}
		switch {
		case o.prev != nil:
			r.Prev = o.prev
		case o.noPrev:
			r.Prev = nil
		}
		if o.seq != 0 {
			r.Seq = o.seq
		}
		if o.serial != "" {
			r.Serial = o.serial
		}
		k := key
		if o.key != nil {
			k = o.key
		}
		s := mustParse(tb, mustSign(tb, k, r))
		if !o.skipped {
			heads[l.dev] = s.ID
		}
		out = append(out, s)
	}
	return out
}

func TestVerifyChain(t *testing.T) {
	good := buildChain(t, interleaved, nil)
	bogus := IDOf([]byte("bogus"))
	other := otherKey(t)

	tests := []struct {
		name  string
		recs  []*Signed
		index int
		want  error
	}{
		{name: "swapped order", recs: swap(good, 3, 4), index: 4, want: ErrSeqOrder},
		{name: "swapped records of one device", recs: swap(good, 0, 3), index: 0, want: ErrFirstHasPrev},
		{name: "missing middle record", recs: slices.Delete(slices.Clone(good), 3, 4), index: 4, want: ErrChainBreak},
		{name: "missing first record", recs: good[1:], index: 2, want: ErrFirstHasPrev},
		{name: "first record with prev", recs: buildChain(t, interleaved, map[int]chainOpts{2: {prev: &bogus}}), index: 2, want: ErrFirstHasPrev},
		{name: "duplicated seq", recs: buildChain(t, interleaved, map[int]chainOpts{4: {seq: 4}}), index: 4, want: ErrSeqOrder},
		{name: "duplicated record", recs: slices.Insert(slices.Clone(good), 5, good[4]), index: 5, want: ErrSeqOrder},
		{name: "decreasing seq", recs: buildChain(t, interleaved, map[int]chainOpts{8: {seq: 1}}), index: 8, want: ErrSeqOrder},
		{name: "record from another gateway key", recs: buildChain(t, interleaved, map[int]chainOpts{6: {key: other}}), index: 6, want: ErrKeyID},
		{name: "first record from another gateway key", recs: buildChain(t, interleaved, map[int]chainOpts{0: {key: other}}), index: 1, want: ErrKeyID},
		{name: "later record without prev", recs: buildChain(t, interleaved, map[int]chainOpts{5: {noPrev: true}}), index: 5, want: ErrChainBreak},
		{name: "later record with wrong prev", recs: buildChain(t, interleaved, map[int]chainOpts{7: {prev: &bogus}}), index: 7, want: ErrChainBreak},
		{name: "prev names another device's record", recs: buildChain(t, interleaved, map[int]chainOpts{3: {prev: &good[1].ID}}), index: 3, want: ErrChainBreak},
		{name: "fork", recs: buildChain(t, append(slices.Clone(interleaved), link{deviceA, serialA, 10}), map[int]chainOpts{5: {skipped: true}}), index: 9, want: ErrChainBreak},
		{name: "serial changed", recs: buildChain(t, interleaved, map[int]chainOpts{4: {serial: "TB-9999"}}), index: 4, want: ErrSerialChanged},
		{name: "nil record", recs: slices.Insert(slices.Clone(good), 2, nil), index: 2, want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyChain(tc.recs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("%T is not a *ChainError", err)
			}
			if ce.Index != tc.index {
				t.Fatalf("index %d, want %d (%v)", ce.Index, tc.index, err)
			}
			if r := tc.recs[tc.index]; r != nil && ce.Seq != r.Record.Seq {
				t.Fatalf("seq %d, want %d", ce.Seq, r.Record.Seq)
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		if err := VerifyChain(good); err != nil {
			t.Fatal(err)
		}
		if err := VerifyChain(nil); err != nil {
			t.Fatal(err)
		}
		// Gaps in the sequence are allowed.
		gaps := slices.Clone(interleaved)
		for i := range gaps {
			gaps[i].seq = uint64(i*i*1000 + 1)
		}
		if err := VerifyChain(buildChain(t, gaps, nil)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestVerifierState checks that a rejected record leaves the Verifier as it
// was and that the stream can go on.
func TestVerifierState(t *testing.T) {
	good := buildChain(t, interleaved, nil)
	var v Verifier
	for _, s := range good[:4] {
		if err := v.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if v.LastSeq() != 4 || v.Devices() != 3 {
		t.Fatalf("LastSeq %d, Devices %d", v.LastSeq(), v.Devices())
	}
	if h, ok := v.Head(deviceA); !ok || h != good[3].ID {
		t.Fatal("head of A is not record 3")
	}
	if _, ok := v.Head(DeviceID{}); ok {
		t.Fatal("head of an unknown device")
	}
	// C9 names C7, not yet seen: rejected, nothing changes, Index counts
	// it.
	err := v.Add(good[8])
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Index != 4 || !errors.Is(err, ErrChainBreak) {
		t.Fatalf("got %v", err)
	}
	if v.LastSeq() != 4 {
		t.Fatal("rejected record moved LastSeq")
	}
	for i, s := range good[4:] {
		if err := v.Add(s); err != nil {
			t.Fatalf("record %d: %v", 4+i, err)
		}
	}
	if v.LastSeq() != 9 {
		t.Fatal("stream did not go on")
	}
}

// swap returns a copy of recs with i and j swapped.
func swap(recs []*Signed, i, j int) []*Signed {
	out := slices.Clone(recs)
	out[i], out[j] = out[j], out[i]
	return out
}
