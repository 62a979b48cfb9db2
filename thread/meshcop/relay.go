package meshcop

import "fmt"

// Relay is the payload of RLY_RX.ntf (c/rx, Joiner Router to Border Agent
// to Commissioner) and RLY_TX.ntf (c/tx, the other way): one UDP datagram
// of a joiner and the coordinates that let the Joiner Router reach it.
//
//	RLY_RX.ntf = Joiner UDP Port, Joiner IID, Joiner Router Locator,
//	             Joiner DTLS Encapsulation
//	RLY_TX.ntf = the same, and Joiner Router KEK with the message that
//	             completes a MeshCoP join (JOIN_FIN.rsp)
//
// Thread 1.4 §8.4.3 (Joiner Router relay); OpenThread
// src/core/meshcop/joiner_router.cpp (HandleUdpReceive writes port, IID,
// locator, encapsulation; HandleRelayTransmit); ot-commissioner
// src/library/joiner_session.cpp (SendRlyTx writes port, locator, IID,
// encapsulation, KEK).
type Relay struct {
	// JoinerUDPPort is the joiner's own UDP port: the source port of its
	// datagrams and the destination of relayed answers.
	JoinerUDPPort uint16
	// JoinerIID is the interface identifier of the joiner's link-local
	// address (fe80::/64 + IID).
	JoinerIID [8]byte
	// JoinerRouterLocator is the RLOC16 of the Joiner Router that relays.
	JoinerRouterLocator uint16
	// Payload is the joiner's UDP payload (DTLS records).
	Payload []byte
	// KEK, if not nil, is the 16-byte Joiner Router KEK (RLY_TX only).
	KEK []byte
	// Other holds any other TLVs, in order.
	Other TLVs
}

// ParseRelay decodes an RLY_RX.ntf or RLY_TX.ntf payload. The four relay
// TLVs are required.
func ParseRelay(b []byte) (*Relay, error) {
	ts, err := Decode(b)
	if err != nil {
		return nil, err
	}
	r := &Relay{}
	if r.JoinerUDPPort, err = ts.Uint16(TypeJoinerUDPPort); err != nil {
		return nil, err
	}
	iid, err := ts.Bytes(TypeJoinerIID)
	if err != nil {
		return nil, err
	}
	copy(r.JoinerIID[:], iid)
	if r.JoinerRouterLocator, err = ts.Uint16(TypeJoinerRouterLocator); err != nil {
		return nil, err
	}
	if r.Payload, err = ts.Bytes(TypeJoinerDTLSEncapsulation); err != nil {
		return nil, err
	}
	if kek, ok := ts.Find(TypeJoinerRouterKEK); ok {
		r.KEK = kek.Value
	}
	r.Other = ts.without(TypeJoinerUDPPort, TypeJoinerIID, TypeJoinerRouterLocator,
		TypeJoinerDTLSEncapsulation, TypeJoinerRouterKEK)
	return r, nil
}

// TLVs returns r as TLVs in ot-commissioner's RLY_TX order: port, locator,
// IID, encapsulation (extended), KEK, then Other.
func (r *Relay) TLVs() TLVs {
	ts := TLVs{
		Uint16TLV(TypeJoinerUDPPort, r.JoinerUDPPort),
		Uint16TLV(TypeJoinerRouterLocator, r.JoinerRouterLocator),
		NewTLV(TypeJoinerIID, r.JoinerIID[:]),
		NewTLV(TypeJoinerDTLSEncapsulation, r.Payload),
	}
	if r.KEK != nil {
		ts = append(ts, NewTLV(TypeJoinerRouterKEK, r.KEK))
	}
	return append(ts, r.Other...)
}

// MarshalBinary encodes r (see TLVs for the order).
func (r *Relay) MarshalBinary() ([]byte, error) { return r.TLVs().Encode() }

// RxTLVs returns r as TLVs in OpenThread's RLY_RX order (port, IID,
// locator, encapsulation), the order a Joiner Router writes.
func (r *Relay) RxTLVs() TLVs {
	return append(TLVs{
		Uint16TLV(TypeJoinerUDPPort, r.JoinerUDPPort),
		NewTLV(TypeJoinerIID, r.JoinerIID[:]),
		Uint16TLV(TypeJoinerRouterLocator, r.JoinerRouterLocator),
		NewTLV(TypeJoinerDTLSEncapsulation, r.Payload),
	}, r.Other...)
}

// State is the value of the State TLV.
type State int8

// State values (ot-commissioner src/library/tlv.hpp kStateReject,
// kStatePending, kStateAccept; OpenThread StateTlv::State).
const (
	StateReject  State = -1
	StatePending State = 0
	StateAccept  State = 1
)

func (s State) String() string {
	switch s {
	case StateReject:
		return "reject"
	case StatePending:
		return "pending"
	case StateAccept:
		return "accept"
	}
	return fmt.Sprintf("state(%d)", int8(s))
}

// StateTLV returns a State TLV.
func StateTLV(s State) TLV { return NewTLV(TypeState, []byte{byte(s)}) }

// state reads and checks the State TLV of ts.
func (ts TLVs) state() (State, error) {
	v, err := ts.Bytes(TypeState)
	if err != nil {
		return 0, err
	}
	s := State(int8(v[0]))
	if s < StateReject || s > StateAccept {
		return 0, fmt.Errorf("%w: State %d", ErrValue, int8(v[0]))
	}
	return s, nil
}

// sessionTLV returns a Commissioner Session ID TLV.
func sessionTLV(id uint16) TLV { return Uint16TLV(TypeCommissionerSessionID, id) }
