package fsm

import (
	"math/rand/v2"
	"testing"
	"time"
)

func machine(seed uint64) *Machine {
	r := rand.New(rand.NewPCG(seed, seed))
	return New(Config{
		KeepAliveMin: 30 * time.Second, KeepAliveMax: 45 * time.Second,
		BackoffMin: time.Second, BackoffMax: time.Minute,
		Uniform: r.Float64,
	})
}

func TestLifecycle(t *testing.T) {
	m := machine(1)
	steps := []struct {
		name string
		got  func() Step
		want Action
		st   State
	}{
		{"start", func() Step { return m.Start() }, Dial, Disconnected},
		{"connected", func() Step { return m.Connected() }, Petition, Petitioning},
		{"accepted", func() Step { return m.PetitionAccepted(7) }, SetSteering, Active},
		{"steering set", func() Step { return m.SteeringAccepted() }, KeepAlive, Active},
		{"kept", func() Step { return m.KeepAliveAccepted() }, KeepAlive, Active},
		{"rejected keep-alive", func() Step { return m.KeepAliveRejected() }, Petition, Petitioning},
		{"accepted again", func() Step { return m.PetitionAccepted(8) }, SetSteering, Active},
		{"steering refused", func() Step { return m.SteeringRejected() }, Petition, Petitioning},
		{"transport lost", func() Step { return m.TransportLost() }, Dial, Disconnected},
		{"reconnected", func() Step { return m.Connected() }, Petition, Petitioning},
		{"third petition", func() Step { return m.PetitionAccepted(9) }, SetSteering, Active},
		{"shutdown resigns", func() Step { return m.Shutdown() }, Resign, Stopped},
	}
	for _, s := range steps {
		if got := s.got(); got.Do != s.want {
			t.Fatalf("%s: %v, want %v", s.name, got.Do, s.want)
		}
		if m.State() != s.st {
			t.Fatalf("%s: state %v, want %v", s.name, m.State(), s.st)
		}
	}
	if m.SessionID() != 9 {
		t.Fatalf("session %d", m.SessionID())
	}
}

func TestShutdownWhenNotActive(t *testing.T) {
	m := machine(1)
	m.Connected()
	if s := m.Shutdown(); s.Do != Close {
		t.Fatalf("%v, want close", s.Do)
	}
}

// TestKeepAliveInterval: always within [30 s, 45 s], and not constant.
func TestKeepAliveInterval(t *testing.T) {
	m := machine(2)
	m.Connected()
	m.PetitionAccepted(1)
	seen := map[time.Duration]bool{}
	for range 1000 {
		s := m.SteeringAccepted()
		if s.After < 30*time.Second || s.After > 45*time.Second {
			t.Fatalf("interval %v outside [30s,45s]", s.After)
		}
		seen[s.After] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct intervals: no jitter", len(seen))
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	m := machine(3)
	var last time.Duration
	for i := range 20 {
		s := m.TransportLost()
		if s.After > time.Minute || s.After < 500*time.Millisecond {
			t.Fatalf("failure %d: backoff %v", i+1, s.After)
		}
		last = s.After
	}
	if last < 30*time.Second {
		t.Fatalf("backoff after 20 failures is %v", last)
	}
	m.Connected()
	m.PetitionAccepted(1)
	if s := m.TransportLost(); s.After > 2*time.Second {
		t.Fatalf("backoff after a success is %v", s.After)
	}
}

func TestSteeringChanged(t *testing.T) {
	m := machine(4)
	if _, now := m.SteeringChanged(); now {
		t.Fatal("steering sent while disconnected")
	}
	m.Connected()
	m.PetitionAccepted(3)
	m.SteeringAccepted()
	s, now := m.SteeringChanged()
	if !now || s.Do != SetSteering {
		t.Fatalf("%v %v", s, now)
	}
	// A keep-alive answered before the new steering went out sends it.
	if s := m.KeepAliveAccepted(); s.Do != SetSteering {
		t.Fatalf("%v", s.Do)
	}
}
