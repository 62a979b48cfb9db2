package window

import (
	"math/rand/v2"
	"testing"
)

func TestCheckAccept(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		accepted []uint64
		seq      uint64
		want     bool
	}{
		{"empty window accepts 0", 32, nil, 0, true},
		{"empty window accepts large", 32, nil, 1 << 39, true},
		{"duplicate of highest", 32, []uint64{5}, 5, false},
		{"newer than highest", 32, []uint64{5}, 6, true},
		{"older inside window, unseen", 32, []uint64{5}, 4, true},
		{"out of order then earlier one", 32, []uint64{5, 4}, 4, false},
		{"lowest edge of window", 32, []uint64{40}, 9, true},
		{"just below window", 32, []uint64{40}, 8, false},
		{"far jump clears old bits", 32, []uint64{3, 100}, 99, true},
		{"far jump keeps new highest", 32, []uint64{3, 100}, 100, false},
		{"size 1 rejects anything older", 1, []uint64{10}, 9, false},
		{"size 64 edge", 64, []uint64{100}, 37, true},
		{"size 64 below", 64, []uint64{100}, 36, false},
		{"4 after 5 (libcoap #1939)", 32, []uint64{1, 2, 3, 5}, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ok := New(tt.size)
			if !ok {
				t.Fatal("New failed")
			}
			for _, s := range tt.accepted {
				if !w.Check(s) {
					t.Fatalf("setup: %d rejected", s)
				}
				w.Accept(s)
			}
			if got := w.Check(tt.seq); got != tt.want {
				t.Errorf("Check(%d) = %v, want %v (state %+v)", tt.seq, got, tt.want, w.State())
			}
		})
	}
}

func TestNewRejectsBadSize(t *testing.T) {
	for _, n := range []int{-1, 0, MaxSize + 1} {
		if _, ok := New(n); ok {
			t.Errorf("New(%d) accepted", n)
		}
	}
}

// TestAgainstModel compares the window with a set-based reference of RFC
// 6347 §4.1.2.6 on random traffic.
func TestAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 7, 32, 64} {
		w, _ := New(size)
		seen := map[uint64]bool{}
		var highest uint64
		started := false
		for i := 0; i < 20000; i++ {
			var seq uint64
			if started && r.IntN(3) > 0 {
				seq = highest - uint64(r.IntN(size+3))
				if seq > highest { // wrapped below zero
					seq = 0
				}
			} else {
				seq = highest + uint64(r.IntN(80))
			}
			want := !seen[seq] && (!started || seq > highest || highest-seq < uint64(size))
			if got := w.Check(seq); got != want {
				t.Fatalf("size %d step %d: Check(%d) = %v, want %v", size, i, seq, got, want)
			}
			if want {
				w.Accept(seq)
				seen[seq] = true
				if !started || seq > highest {
					highest = seq
				}
				started = true
			}
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	w, _ := New(32)
	for _, s := range []uint64{1, 3, 7, 8, 30} {
		w.Accept(s)
	}
	st := w.State()
	if st.Highest != 30 {
		t.Fatalf("Highest = %d", st.Highest)
	}
	r, _ := Restore(32, st)
	for seq := uint64(0); seq < 40; seq++ {
		if r.Check(seq) != w.Check(seq) {
			t.Errorf("restored window differs at %d", seq)
		}
		if st.Seen(seq) == w.Check(seq) {
			t.Errorf("State.Seen(%d) = %v disagrees with Check", seq, st.Seen(seq))
		}
	}
}

func TestLowerLimit(t *testing.T) {
	w, _ := New(32)
	w.Set(LowerLimit(100))
	for _, tc := range []struct {
		seq  uint64
		want bool
	}{{100, false}, {99, false}, {69, false}, {0, false}, {101, true}, {5000, true}} {
		if got := w.Check(tc.seq); got != tc.want {
			t.Errorf("Check(%d) = %v, want %v", tc.seq, got, tc.want)
		}
	}
}

func TestAddMergeCommute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		base := State{}
		for j := 0; j < r.IntN(5); j++ {
			base = base.Add(uint64(r.IntN(200)))
		}
		seqs := make([]uint64, 1+r.IntN(6))
		for j := range seqs {
			seqs[j] = uint64(r.IntN(300))
		}
		fwd, rev := base, base
		for j := range seqs {
			fwd = fwd.Add(seqs[j])
			rev = rev.Add(seqs[len(seqs)-1-j])
		}
		if fwd != rev {
			t.Fatalf("Add does not commute: %v: %+v vs %+v", seqs, fwd, rev)
		}
		if fwd.Add(seqs[0]) != fwd {
			t.Fatalf("Add not idempotent")
		}
		other := State{}
		for _, s := range seqs {
			other = other.Add(s)
		}
		if m1, m2 := base.Merge(other), other.Merge(base); m1 != m2 || m1 != fwd {
			t.Fatalf("Merge: %+v %+v, want %+v", m1, m2, fwd)
		}
	}
}
