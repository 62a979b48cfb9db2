package meshcop

import "fmt"

// CoAP URI paths of the commissioner's MeshCoP messages (OpenThread
// src/core/thread/uri_paths.cpp; ot-commissioner src/library/uri.hpp).
const (
	PathPetition        = "/c/cp" // COMM_PET
	PathKeepAlive       = "/c/ca" // COMM_KA
	PathCommissionerSet = "/c/cs" // MGMT_COMMISSIONER_SET
	PathCommissionerGet = "/c/cg" // MGMT_COMMISSIONER_GET
	PathRelayRx         = "/c/rx" // RLY_RX.ntf
	PathRelayTx         = "/c/tx" // RLY_TX.ntf
	PathJoinerFinalize  = "/c/jf" // JOIN_FIN
	PathJoinerEntrust   = "/c/je" // JOIN_ENT
)

// Petition is COMM_PET.req, the commissioner's bid to become the single
// active commissioner.
//
//	COMM_PET.req = Commissioner ID [, Commissioner Token, Commissioner
//	               Signature (CCM, signed petitions)]
//
// Thread 1.4 §8.9.1 (Commissioner Petition); ot-commissioner
// src/library/commissioner_impl.cpp (SendPetition).
type Petition struct {
	CommissionerID string
	Other          TLVs
}

// ParsePetition decodes a COMM_PET.req payload.
func ParsePetition(b []byte) (*Petition, error) {
	ts, err := Decode(b)
	if err != nil {
		return nil, err
	}
	id, err := ts.Bytes(TypeCommissionerID)
	if err != nil {
		return nil, err
	}
	return &Petition{CommissionerID: string(id), Other: ts.without(TypeCommissionerID)}, nil
}

// MarshalBinary encodes p.
func (p *Petition) MarshalBinary() ([]byte, error) {
	return append(TLVs{NewTLV(TypeCommissionerID, []byte(p.CommissionerID))}, p.Other...).Encode()
}

// PetitionResult is COMM_PET.rsp.
//
//	COMM_PET.rsp = State [, Commissioner ID (of the active commissioner)]
//	               [, Commissioner Session ID (when accepted)]
//
// OpenThread src/core/meshcop/meshcop_leader.cpp (SendPetitionResponse)
// writes them in that order; the Border Agent relays the leader's answer.
type PetitionResult struct {
	State State
	// CommissionerID is the active commissioner's ID, if the leader has one
	// (on reject: who holds the role).
	CommissionerID string
	HasID          bool
	// SessionID is the Commissioner Session ID; required when State is
	// Accept.
	SessionID uint16
	Other     TLVs
}

// ParsePetitionResult decodes a COMM_PET.rsp payload.
func ParsePetitionResult(b []byte) (*PetitionResult, error) {
	ts, err := Decode(b)
	if err != nil {
		return nil, err
	}
	r := &PetitionResult{}
	if r.State, err = ts.state(); err != nil {
		return nil, err
	}
	if id, ok := ts.Find(TypeCommissionerID); ok {
		r.CommissionerID, r.HasID = string(id.Value), true
	}
	if _, ok := ts.Find(TypeCommissionerSessionID); ok || r.State == StateAccept {
		if r.SessionID, err = ts.Uint16(TypeCommissionerSessionID); err != nil {
			return nil, err
		}
	}
	r.Other = ts.without(TypeState, TypeCommissionerID, TypeCommissionerSessionID)
	return r, nil
}

// MarshalBinary encodes r. The session ID is written when State is Accept
// or it is not zero.
func (r *PetitionResult) MarshalBinary() ([]byte, error) {
	ts := TLVs{StateTLV(r.State)}
	if r.HasID {
		ts = append(ts, NewTLV(TypeCommissionerID, []byte(r.CommissionerID)))
	}
	if r.State == StateAccept || r.SessionID != 0 {
		ts = append(ts, sessionTLV(r.SessionID))
	}
	return append(ts, r.Other...).Encode()
}

// KeepAlive is COMM_KA.req. State Accept keeps the role; State Reject
// resigns it.
//
//	COMM_KA.req = State, Commissioner Session ID [, Commissioner
//	              Signature (CCM)]
//
// ot-commissioner src/library/commissioner_impl.cpp (SendKeepAlive with
// aKeepAlive false is Resign); OpenThread meshcop_leader.cpp
// (HandleTmf<kUriLeaderKeepAlive>: a State other than Accept resigns).
type KeepAlive struct {
	State     State
	SessionID uint16
	Other     TLVs
}

// ParseKeepAlive decodes a COMM_KA.req payload.
func ParseKeepAlive(b []byte) (*KeepAlive, error) {
	ts, err := Decode(b)
	if err != nil {
		return nil, err
	}
	k := &KeepAlive{}
	if k.State, err = ts.state(); err != nil {
		return nil, err
	}
	if k.SessionID, err = ts.Uint16(TypeCommissionerSessionID); err != nil {
		return nil, err
	}
	k.Other = ts.without(TypeState, TypeCommissionerSessionID)
	return k, nil
}

// MarshalBinary encodes k.
func (k *KeepAlive) MarshalBinary() ([]byte, error) {
	return append(TLVs{StateTLV(k.State), sessionTLV(k.SessionID)}, k.Other...).Encode()
}

// StateResult is the answer to COMM_KA.req and MGMT_COMMISSIONER_SET.req:
// a State TLV (OpenThread SendKeepAliveResponse; ot-commissioner
// HandleStateResponse).
type StateResult struct {
	State State
	Other TLVs
}

// ParseStateResult decodes a State-carrying response payload.
func ParseStateResult(b []byte) (*StateResult, error) {
	ts, err := Decode(b)
	if err != nil {
		return nil, err
	}
	s, err := ts.state()
	if err != nil {
		return nil, err
	}
	return &StateResult{State: s, Other: ts.without(TypeState)}, nil
}

// MarshalBinary encodes r.
func (r *StateResult) MarshalBinary() ([]byte, error) {
	return append(TLVs{StateTLV(r.State)}, r.Other...).Encode()
}

// CommissionerSet is MGMT_COMMISSIONER_SET.req: the commissioner's update
// of the Commissioning Data in the leader's Network Data.
//
//	MGMT_COMMISSIONER_SET.req = Commissioner Session ID [, Steering Data]
//	    [, AE Steering Data] [, NMKP Steering Data] [, Joiner UDP Port] ...
//
// ot-commissioner src/library/commissioner_impl.cpp
// (EncodeCommissionerDataset); shared/spec/thread-ble.md §1.3.
type CommissionerSet struct {
	SessionID uint16
	// Steering, AESteering and NMKPSteering are nil when absent.
	Steering     SteeringData
	AESteering   SteeringData
	NMKPSteering SteeringData
	// JoinerUDPPort is 0 when absent.
	JoinerUDPPort uint16
	Other         TLVs
}

// ParseCommissionerSet decodes a MGMT_COMMISSIONER_SET.req payload.
func ParseCommissionerSet(b []byte) (*CommissionerSet, error) {
	ts, err := Decode(b)
	if err != nil {
		return nil, err
	}
	c := &CommissionerSet{}
	if c.SessionID, err = ts.Uint16(TypeCommissionerSessionID); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		t  Type
		sd *SteeringData
	}{{TypeSteeringData, &c.Steering}, {TypeAESteeringData, &c.AESteering}, {TypeNMKPSteeringData, &c.NMKPSteering}} {
		if tlv, ok := ts.Find(f.t); ok {
			*f.sd = SteeringData(tlv.Value)
		}
	}
	if _, ok := ts.Find(TypeJoinerUDPPort); ok {
		if c.JoinerUDPPort, err = ts.Uint16(TypeJoinerUDPPort); err != nil {
			return nil, err
		}
		if c.JoinerUDPPort == 0 {
			return nil, fmt.Errorf("%w: Joiner UDP Port 0", ErrValue)
		}
	}
	c.Other = ts.without(TypeCommissionerSessionID, TypeSteeringData, TypeAESteeringData,
		TypeNMKPSteeringData, TypeJoinerUDPPort)
	return c, nil
}

// MarshalBinary encodes c.
func (c *CommissionerSet) MarshalBinary() ([]byte, error) {
	ts := TLVs{sessionTLV(c.SessionID)}
	for _, f := range []struct {
		t  Type
		sd SteeringData
	}{{TypeSteeringData, c.Steering}, {TypeAESteeringData, c.AESteering}, {TypeNMKPSteeringData, c.NMKPSteering}} {
		if f.sd != nil {
			ts = append(ts, NewTLV(f.t, f.sd))
		}
	}
	if c.JoinerUDPPort != 0 {
		ts = append(ts, Uint16TLV(TypeJoinerUDPPort, c.JoinerUDPPort))
	}
	return append(ts, c.Other...).Encode()
}
