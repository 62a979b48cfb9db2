package commissioner

import (
	"context"
	"time"

	"github.com/tumbler-iot/tumbler/thread/commissioner/internal/fsm"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// resignTimeout bounds the resignation on shutdown.
const resignTimeout = 5 * time.Second

// keepAlive sends COMM_KA.req [State Accept, Commissioner Session ID] to
// c/ca; the answer's State says whether the role is kept
// (ot-commissioner SendKeepAlive; OpenThread meshcop_leader.cpp
// HandleTmf<kUriLeaderKeepAlive> rejects an unknown session ID).
func (c *Commissioner) keepAlive(ctx context.Context, m *fsm.Machine) fsm.Step {
	state, err := c.sendKeepAlive(ctx, meshcop.StateAccept, m.SessionID())
	if err != nil {
		return c.failed(m, "COMM_KA", err, m.KeepAliveRejected)
	}
	if state != meshcop.StateAccept {
		c.log.Warn().Stringer("state", state).Msg("keep-alive rejected: petitioning again")
		return m.KeepAliveRejected()
	}
	return m.KeepAliveAccepted()
}

// resign sends COMM_KA.req with State Reject: the leader resigns the
// commissioner and answers State Reject (meshcop_leader.cpp; ot-commissioner
// Resign treats that answer as success). Then the session is closed.
func (c *Commissioner) resign(sessionID uint16) {
	ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
	defer cancel()
	if _, err := c.sendKeepAlive(ctx, meshcop.StateReject, sessionID); err != nil {
		c.log.Info().Err(err).Msg("resign not acknowledged")
	} else {
		c.log.Info().Uint16("session_id", sessionID).Msg("resigned")
	}
	c.setSession(nil)
}

func (c *Commissioner) sendKeepAlive(ctx context.Context, s meshcop.State, sessionID uint16) (meshcop.State, error) {
	req, err := (&meshcop.KeepAlive{State: s, SessionID: sessionID}).MarshalBinary()
	if err != nil {
		return 0, err
	}
	b, err := c.request(ctx, meshcop.PathKeepAlive, req)
	if err != nil {
		return 0, err
	}
	res, err := meshcop.ParseStateResult(b)
	if err != nil {
		return 0, errResponse("COMM_KA.rsp", err)
	}
	return res.State, nil
}
