package seqno

import (
	"errors"
	"testing"
)

type memStore struct {
	v      uint64
	ok     bool
	writes int
	fail   error
}

func (m *memStore) persist(n uint64) error {
	if m.fail != nil {
		return m.fail
	}
	m.v, m.ok = n, true
	m.writes++
	return nil
}

func TestNextWithoutPersistence(t *testing.T) {
	c, err := New(7)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(7); want < 10; want++ {
		got, err := c.Next()
		if err != nil || got != want {
			t.Fatalf("Next = %d, %v; want %d", got, err, want)
		}
	}
}

func TestPersistEveryK(t *testing.T) {
	s := &memStore{}
	c, err := Resume(0, false, 0, 4, 4, s.persist)
	if err != nil {
		t.Fatal(err)
	}
	var stored []uint64
	for i := 0; i < 10; i++ {
		before := s.writes
		n, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if s.writes != before {
			stored = append(stored, s.v)
			if s.v != n {
				t.Errorf("stored %d before using %d", s.v, n)
			}
		}
	}
	if want := []uint64{0, 4, 8}; len(stored) != len(want) || stored[0] != 0 || stored[1] != 4 || stored[2] != 8 {
		t.Errorf("stored %v, want %v", stored, want)
	}
}

func TestResumeAndStoreFirst(t *testing.T) {
	s := &memStore{v: 8, ok: true}
	c, err := Resume(s.v, s.ok, 0, 4, 2, s.persist)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	if n != 14 { // 8 + K + F
		t.Errorf("resumed at %d, want 14", n)
	}
	if s.v != 14 {
		t.Errorf("stored %d, want 14 stored before first use", s.v)
	}
}

func TestPersistFailureDoesNotAdvance(t *testing.T) {
	boom := errors.New("disk full")
	s := &memStore{fail: boom}
	c, _ := Resume(0, false, 0, 4, 4, s.persist)
	if _, err := c.Next(); !errors.Is(err, ErrPersist) || !errors.Is(err, boom) {
		t.Fatalf("Next error = %v", err)
	}
	if c.Peek() != 0 {
		t.Fatalf("advanced to %d after failure", c.Peek())
	}
	s.fail = nil
	if n, err := c.Next(); err != nil || n != 0 {
		t.Fatalf("Next after recovery = %d, %v", n, err)
	}
}

func TestExhaustion(t *testing.T) {
	c, _ := New(Max)
	if n, err := c.Next(); err != nil || n != Max {
		t.Fatalf("Next = %d, %v", n, err)
	}
	if _, err := c.Next(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Next past Max = %v, want ErrExhausted", err)
	}
	s := &memStore{}
	r, _ := Resume(Max-1, true, 0, 4, 4, s.persist)
	if _, err := r.Next(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("resume near Max = %v, want ErrExhausted", err)
	}
	if _, err := New(Max + 2); !errors.Is(err, ErrExhausted) {
		t.Fatalf("New(Max+2) = %v", err)
	}
}

func TestResumeRejectsZeroKF(t *testing.T) {
	if _, err := Resume(0, false, 0, 0, 1, func(uint64) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("K = 0: %v", err)
	}
	if _, err := Resume(0, false, 0, 1, 0, func(uint64) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("F = 0: %v", err)
	}
	if _, err := Resume(0, false, 0, 1, 1, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil persist: %v", err)
	}
}
