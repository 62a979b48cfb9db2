package commissioner

import (
	"context"
	"errors"

	"github.com/tumbler-iot/tumbler/thread/commissioner/internal/fsm"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// petition sends COMM_PET.req [Commissioner ID] to c/cp. The Border Agent
// relays it to the leader as LEAD_PET; the answer is State, the active
// commissioner's ID and, when accepted, the Commissioner Session ID
// (ot-commissioner SendPetition; OpenThread meshcop_leader.cpp
// HandleTmf<kUriLeaderPetition>: a petition from the commissioner already
// active under the same ID is accepted with a new session ID).
func (c *Commissioner) petition(ctx context.Context, m *fsm.Machine) fsm.Step {
	req, err := (&meshcop.Petition{CommissionerID: c.cfg.ID}).MarshalBinary()
	if err != nil {
		// Validate bounded the ID: this is a bug, not a network event.
		c.log.Error().Err(err).Msg("COMM_PET")
		return m.Shutdown()
	}
	b, err := c.request(ctx, meshcop.PathPetition, req)
	if err != nil {
		return c.failed(m, "COMM_PET", err, m.PetitionRejected)
	}
	res, err := meshcop.ParsePetitionResult(b)
	if err != nil {
		c.log.Warn().Err(err).Msg("malformed COMM_PET.rsp")
		return m.PetitionRejected()
	}
	if res.State != meshcop.StateAccept {
		ev := c.log.Warn().Stringer("state", res.State)
		if res.HasID {
			ev = ev.Str("active_commissioner", res.CommissionerID)
		}
		ev.Msg("petition rejected")
		return m.PetitionRejected()
	}
	c.log.Info().Uint16("session_id", res.SessionID).Msg("petition accepted")
	return m.PetitionAccepted(res.SessionID)
}

// failed maps a request error: a refusal in CoAP terms is handled like a
// rejection (onRefused), anything else means the session is gone.
func (c *Commissioner) failed(m *fsm.Machine, what string, err error, onRefused func() fsm.Step) fsm.Step {
	if errors.Is(err, ErrResponse) {
		c.log.Warn().Err(err).Msg(what + " refused")
		return onRefused()
	}
	c.log.Info().Err(err).Msg(what + " failed: reconnecting")
	c.setSession(nil)
	return m.TransportLost()
}
