package meshcop

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// localBit is the IEEE U/L bit of byte 0 (OpenThread Mac::ExtAddress
// SetLocal; ot-commissioner kLocalExternalAddrMask = 1 << 1).
const localBit = 0x02

// EUI64 is a factory-assigned IEEE EUI-64, most significant byte first.
type EUI64 [8]byte

// ParseEUI64 parses 16 hex digits ("18b4300000000002").
func ParseEUI64(s string) (EUI64, error) {
	var e EUI64
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 {
		return e, fmt.Errorf("%w: EUI-64 %q is not 16 hex digits", ErrValue, s)
	}
	copy(e[:], b)
	return e, nil
}

func (e EUI64) String() string { return hex.EncodeToString(e[:]) }

// JoinerID identifies a joiner during MeshCoP commissioning: it is the
// joiner's IEEE 802.15.4 extended address while it joins, and what steering
// data is computed from.
type JoinerID [8]byte

// JoinerIDFromEUI64 is the first 8 bytes of SHA-256 over the EUI-64 with
// the local (U/L) bit set. OpenThread src/core/meshcop/meshcop.cpp
// (ComputeJoinerId); ot-commissioner Commissioner::ComputeJoinerId.
func JoinerIDFromEUI64(e EUI64) JoinerID {
	sum := sha256.Sum256(e[:])
	var id JoinerID
	copy(id[:], sum[:8])
	id[0] |= localBit
	return id
}

// JoinerIDFromIID is the Joiner ID of the joiner whose link-local address
// has interface identifier iid (the Joiner IID TLV): the IID with the U/L
// bit flipped, as an extended address becomes an IID (RFC 4944 §6).
// ot-commissioner src/library/commissioner_impl.cpp (HandleRlyRx) and
// joiner_session.cpp (GetJoinerIid).
func JoinerIDFromIID(iid [8]byte) JoinerID {
	id := JoinerID(iid)
	id[0] ^= localBit
	return id
}

// IID is the interface identifier of the link-local address a joiner with
// this Joiner ID uses while joining.
func (id JoinerID) IID() [8]byte {
	iid := [8]byte(id)
	iid[0] ^= localBit
	return iid
}

func (id JoinerID) String() string { return hex.EncodeToString(id[:]) }
