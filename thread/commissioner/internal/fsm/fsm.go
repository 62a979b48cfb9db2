// Package fsm is the commissioner's state machine, free of sockets and
// clocks: the driver reports what happened (connected, petition answered,
// keep-alive answered, transport lost, steering changed, shutdown) and the
// machine says what to do next and after how long.
//
// The behaviour follows ot-commissioner src/library/commissioner_impl.cpp
// (SendPetition, SendKeepAlive, Resign) and the leader's side in OpenThread
// src/core/meshcop/meshcop_leader.cpp: petition until accepted; then set
// the steering data; keep alive every 30–45 s (the leader drops a
// commissioner after TIMEOUT_LEAD_PET = 50 s); on a rejected keep-alive or
// MGMT_COMMISSIONER_SET the role is lost, so petition again; on a lost
// session, reconnect with backoff; on shutdown, resign with a keep-alive
// carrying State Reject.
package fsm

import (
	"fmt"
	"time"
)

// State of the commissioner.
type State int

// States.
const (
	// Disconnected: no DTLS session with the Border Agent.
	Disconnected State = iota
	// Petitioning: connected, not (or no longer) the active commissioner.
	Petitioning
	// Active: the active commissioner, holding a session ID.
	Active
	// Stopped: resigned or shut down; the machine does nothing more.
	Stopped
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Petitioning:
		return "petitioning"
	case Active:
		return "active"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Action is what the driver must do next.
type Action int

// Actions.
const (
	// Dial the Border Agent (a new DTLS session).
	Dial Action = iota
	// Petition sends COMM_PET.req.
	Petition
	// SetSteering sends MGMT_COMMISSIONER_SET.req with the steering data.
	SetSteering
	// KeepAlive sends COMM_KA.req with State Accept.
	KeepAlive
	// Resign sends COMM_KA.req with State Reject, then closes.
	Resign
	// Close closes the session and stops.
	Close
)

func (a Action) String() string {
	return [...]string{"dial", "petition", "set-steering", "keep-alive", "resign", "close"}[a]
}

// Step is the machine's instruction: wait After, then Do.
type Step struct {
	Do    Action
	After time.Duration
}

// Config tunes the machine.
type Config struct {
	// KeepAliveMin and KeepAliveMax bound the keep-alive interval; each
	// interval is drawn uniformly from [min, max] (ot-commissioner allows
	// 30..45 s, default 40; the leader times out at 50 s).
	KeepAliveMin, KeepAliveMax time.Duration
	// BackoffMin and BackoffMax bound the wait before redialling or
	// petitioning again after a failure; it doubles per consecutive
	// failure, with jitter.
	BackoffMin, BackoffMax time.Duration
	// Uniform returns a number in [0, 1); it is the machine's only
	// randomness.
	Uniform func() float64
}

// Machine is the commissioner state machine. It is not safe for
// concurrent use; one driver goroutine owns it.
type Machine struct {
	cfg       Config
	state     State
	sessionID uint16
	failures  int
	// steeringSet reports whether the current role has the latest
	// steering data.
	steeringSet bool
}

// New returns a machine in Disconnected whose first step is Dial.
func New(cfg Config) *Machine { return &Machine{cfg: cfg} }

// Start is the first step.
func (m *Machine) Start() Step { return Step{Do: Dial} }

// State is the current state.
func (m *Machine) State() State { return m.state }

// SessionID is the Commissioner Session ID while Active.
func (m *Machine) SessionID() uint16 { return m.sessionID }

// Connected: the DTLS session is up; petition.
func (m *Machine) Connected() Step {
	m.state = Petitioning
	return Step{Do: Petition}
}

// PetitionAccepted: the role is ours with sessionID; set the steering
// data now.
func (m *Machine) PetitionAccepted(sessionID uint16) Step {
	m.state, m.sessionID, m.failures, m.steeringSet = Active, sessionID, 0, false
	return Step{Do: SetSteering}
}

// PetitionRejected: another commissioner holds the role (or the leader
// refused); petition again after backoff.
func (m *Machine) PetitionRejected() Step {
	m.state = Petitioning
	return Step{Do: Petition, After: m.backoff()}
}

// SteeringAccepted: the leader took the steering data; keep alive.
func (m *Machine) SteeringAccepted() Step {
	m.steeringSet = true
	return Step{Do: KeepAlive, After: m.interval()}
}

// SteeringRejected: the leader refused MGMT_COMMISSIONER_SET (a stale
// session ID: the role was lost); petition again.
func (m *Machine) SteeringRejected() Step { return m.roleLost() }

// SteeringChanged: new steering data to publish. While Active it is sent
// at once; otherwise it goes out after the next accepted petition.
func (m *Machine) SteeringChanged() (Step, bool) {
	m.steeringSet = false
	if m.state != Active {
		return Step{}, false
	}
	return Step{Do: SetSteering}, true
}

// KeepAliveAccepted: the role is kept; next keep-alive after a fresh
// interval.
func (m *Machine) KeepAliveAccepted() Step {
	if !m.steeringSet {
		return Step{Do: SetSteering}
	}
	return Step{Do: KeepAlive, After: m.interval()}
}

// KeepAliveRejected: the leader no longer knows this session (it timed
// out, or another commissioner took over); petition again.
func (m *Machine) KeepAliveRejected() Step { return m.roleLost() }

func (m *Machine) roleLost() Step {
	m.state, m.sessionID = Petitioning, 0
	m.failures++
	return Step{Do: Petition, After: m.backoff()}
}

// TransportLost: the session failed (handshake, timeout, closed);
// redial after backoff.
func (m *Machine) TransportLost() Step {
	m.state, m.sessionID = Disconnected, 0
	m.failures++
	return Step{Do: Dial, After: m.backoff()}
}

// Shutdown: stop. An active commissioner resigns first.
func (m *Machine) Shutdown() Step {
	was := m.state
	m.state = Stopped
	if was == Active {
		return Step{Do: Resign}
	}
	return Step{Do: Close}
}

// interval draws a keep-alive interval from [KeepAliveMin, KeepAliveMax].
func (m *Machine) interval() time.Duration {
	span := m.cfg.KeepAliveMax - m.cfg.KeepAliveMin
	return m.cfg.KeepAliveMin + time.Duration(m.cfg.Uniform()*float64(span+1))
}

// backoff is BackoffMin doubled per consecutive failure, at most
// BackoffMax, scaled by a factor in [0.5, 1).
func (m *Machine) backoff() time.Duration {
	d := m.cfg.BackoffMin
	for i := 1; i < m.failures && d < m.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.BackoffMax)
	return time.Duration(float64(d) * (0.5 + m.cfg.Uniform()/2))
}
