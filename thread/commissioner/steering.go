package commissioner

import (
	"context"
	"fmt"

	"github.com/tumbler-iot/tumbler/thread/commissioner/internal/fsm"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// setSteering sends MGMT_COMMISSIONER_SET.req [Commissioner Session ID,
// Steering Data] to c/cs: the leader writes it into the Commissioning Data,
// Joiner Routers open their joiner port, and joiners whose Joiner ID the
// filter admits attach (ot-commissioner SetCommissionerDataset,
// EncodeCommissionerDataset). The answer carries State.
func (c *Commissioner) setSteering(ctx context.Context, m *fsm.Machine) fsm.Step {
	sd := c.Steering()
	set := &meshcop.CommissionerSet{SessionID: m.SessionID()}
	for _, t := range c.o.steeringTypes {
		switch t {
		case meshcop.TypeSteeringData:
			set.Steering = sd
		case meshcop.TypeAESteeringData:
			set.AESteering = sd
		case meshcop.TypeNMKPSteeringData:
			set.NMKPSteering = sd
		}
	}
	req, err := set.MarshalBinary()
	if err != nil {
		c.log.Error().Err(err).Msg("MGMT_COMMISSIONER_SET")
		return m.Shutdown()
	}
	b, err := c.request(ctx, meshcop.PathCommissionerSet, req)
	if err != nil {
		return c.failed(m, "MGMT_COMMISSIONER_SET", err, m.SteeringRejected)
	}
	res, err := meshcop.ParseStateResult(b)
	if err != nil || res.State != meshcop.StateAccept {
		c.log.Warn().Err(err).Msg("steering data refused: petitioning again")
		return m.SteeringRejected()
	}
	c.log.Info().Stringer("steering", sd).Msg("steering data set")
	return m.SteeringAccepted()
}

func errResponse(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrResponse, what, err)
}
