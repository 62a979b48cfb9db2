package sim

import (
	"context"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// handlePetition is COMM_PET forwarded as LEAD_PET: accept unless another
// commissioner ID holds the role; a petition under the active ID replaces
// the old session (meshcop_leader.cpp HandleTmf<kUriLeaderPetition>).
func (b *BorderAgent) handlePetition(_ context.Context, r *coap.Request) (*coap.Response, error) {
	b.stats.petitions.Add(1)
	p, err := meshcop.ParsePetition(r.Payload)
	if err != nil {
		return nil, badRequest("COMM_PET", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	res := &meshcop.PetitionResult{State: meshcop.StateReject}
	if b.active && b.id != p.CommissionerID {
		res.CommissionerID, res.HasID = b.id, true
	} else {
		if b.active {
			b.resign()
		}
		b.sessionID++
		b.active, b.id, b.lastKA = true, p.CommissionerID, b.cfg.Now()
		b.steering = meshcop.SteeringData{0}
		res = &meshcop.PetitionResult{State: meshcop.StateAccept, CommissionerID: b.id, HasID: true, SessionID: b.sessionID}
		b.log.Info().Str("commissioner", b.id).Uint16("session_id", b.sessionID).Msg("leader: petition accepted")
	}
	out, err := res.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return coap.Changed(coap.FormatNone, out), nil
}

// handleKeepAlive is COMM_KA forwarded as LEAD_KA: reject an unknown
// session; State Reject resigns; otherwise restart the 50 s timer
// (meshcop_leader.cpp HandleTmf<kUriLeaderKeepAlive>).
func (b *BorderAgent) handleKeepAlive(_ context.Context, r *coap.Request) (*coap.Response, error) {
	b.stats.keepAlives.Add(1)
	k, err := meshcop.ParseKeepAlive(r.Payload)
	if err != nil {
		return nil, badRequest("COMM_KA", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	switch {
	case !b.active || k.SessionID != b.sessionID:
		return stateResponse(meshcop.StateReject)
	case k.State != meshcop.StateAccept:
		b.stats.resigns.Add(1)
		b.log.Info().Str("commissioner", b.id).Msg("leader: commissioner resigned")
		b.resign()
		return stateResponse(meshcop.StateReject)
	}
	b.lastKA = b.cfg.Now()
	return stateResponse(meshcop.StateAccept)
}

// handleCommissionerSet is MGMT_COMMISSIONER_SET: the session ID must be
// the active one; the steering data becomes the commissioning data.
func (b *BorderAgent) handleCommissionerSet(_ context.Context, r *coap.Request) (*coap.Response, error) {
	b.stats.sets.Add(1)
	c, err := meshcop.ParseCommissionerSet(r.Payload)
	if err != nil {
		return nil, badRequest("MGMT_COMMISSIONER_SET", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	if !b.active || c.SessionID != b.sessionID {
		return stateResponse(meshcop.StateReject)
	}
	switch {
	case c.Steering != nil:
		b.steering = append(meshcop.SteeringData(nil), c.Steering...)
	case c.AESteering != nil:
		b.steering = append(meshcop.SteeringData(nil), c.AESteering...)
	}
	return stateResponse(meshcop.StateAccept)
}

// PetitionOther makes another commissioner, id, the active one, as a
// phone app petitioning through another Border Agent would; it then
// times out after LeaderTimeout like any commissioner that sends no
// keep-alive. It returns false if a commissioner is active already.
func (b *BorderAgent) PetitionOther(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	if b.active {
		return false
	}
	b.sessionID++
	b.active, b.id, b.lastKA = true, id, b.cfg.Now()
	b.steering = meshcop.SteeringData{0}
	return true
}
