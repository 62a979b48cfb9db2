package upstream

import (
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name      string
		base, max time.Duration
		rand      io.Reader
		want      []time.Duration // delays for retries 1, 2, ...
	}{
		{
			name: "ceiling doubles to the 5 min cap (all-ones randomness)",
			base: 500 * ms, max: 5 * time.Minute, rand: constReader(0xff),
			want: []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
				16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second,
				5 * time.Minute, 5 * time.Minute, 5 * time.Minute},
		},
		{
			name: "all-zero randomness waits nothing (full jitter)",
			base: 500 * ms, max: 5 * time.Minute, rand: constReader(0),
			want: []time.Duration{0, 0, 0, 0},
		},
		{
			name: "cap below the second step",
			base: 100 * ms, max: 150 * ms, rand: constReader(0xff),
			want: []time.Duration{100 * ms, 150 * ms, 150 * ms},
		},
		{
			name: "base equal to max",
			base: time.Second, max: time.Second, rand: constReader(0xff),
			want: []time.Duration{time.Second, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBackoff(tt.base, tt.max, tt.rand)
			if err != nil {
				t.Fatal(err)
			}
			var got []time.Duration
			for n := 1; n <= len(tt.want); n++ {
				got = append(got, b.Delay(n))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("delays = %v, want %v", got, tt.want)
			}
			if d := b.Delay(0); d != 0 {
				t.Errorf("Delay(0) = %v, want 0 (first connection attempt)", d)
			}
		})
	}
}

func TestBackoffSeededIsDeterministicAndCapped(t *testing.T) {
	seed := [32]byte{1, 2, 3}
	a, err := NewBackoff(500*time.Millisecond, 5*time.Minute, rand.NewChaCha8(seed))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBackoff(500*time.Millisecond, 5*time.Minute, rand.NewChaCha8(seed))
	if err != nil {
		t.Fatal(err)
	}
	distinct := make(map[time.Duration]bool)
	for n := 1; n <= 200; n++ {
		da, db := a.Delay(n), b.Delay(n)
		if da != db {
			t.Fatalf("retry %d: same seed gave %v and %v", n, da, db)
		}
		if da < 0 || da > a.Ceiling(n) {
			t.Fatalf("retry %d: %v outside [0, %v]", n, da, a.Ceiling(n))
		}
		if da > 5*time.Minute {
			t.Fatalf("retry %d: %v above the cap", n, da)
		}
		distinct[da] = true
	}
	if len(distinct) < 150 {
		t.Errorf("only %d distinct delays in 200: jitter is not jittering", len(distinct))
	}
}

func TestBackoffFailingRandUsesCeiling(t *testing.T) {
	b, err := NewBackoff(time.Second, time.Minute, failingReader{})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Delay(3); got != 4*time.Second {
		t.Errorf("Delay(3) = %v, want the ceiling 4s", got)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestNewBackoffErrors(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		rand      io.Reader
	}{
		{"zero base", 0, time.Second, constReader(0)},
		{"negative base", -time.Second, time.Second, constReader(0)},
		{"max below base", time.Second, time.Millisecond, constReader(0)},
		{"nil rand", time.Second, time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewBackoff(tt.base, tt.max, tt.rand); !errors.Is(err, ErrConfig) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
		})
	}
}
