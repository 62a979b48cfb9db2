package record

import (
	"bytes"
	"fmt"
)

// Verifier checks the chain rules over a sequence of records fed one at a
// time, for streams:
//   - all records carry the kid of the first (ErrKeyID): one gateway key;
//   - the gateway sequence number strictly increases across all records,
//     whatever their device (ErrSeqOrder); gaps are allowed;
//   - the first record of a device has prev null (ErrFirstHasPrev);
//   - every later record of a device names the previous record of that
//     device, the SHA-256 of its COSE_Sign1 bytes (ErrChainBreak), and
//     keeps its serial number (ErrSerialChanged).
//
// Checks run in that order. The Verifier does not check signatures: call
// Signed.Verify on each record first. It does not interpret record types
// either (any type may start or continue a device's chain). The zero value
// is ready to use; a Verifier is not safe for concurrent use. Memory is
// one entry per device.
type Verifier struct {
	n       int
	lastSeq uint64
	kid     []byte
	heads   map[DeviceID]deviceHead
}

// deviceHead is the latest accepted record of one device.
type deviceHead struct {
	id     ID
	serial string
}

// Add checks s against the records added before it and, if it passes,
// makes it the latest record of its device. A failure is a *ChainError
// whose Index is the number of earlier Add calls; a rejected record leaves
// the Verifier's state unchanged (it still counts for Index).
func (v *Verifier) Add(s *Signed) error {
	idx := v.n
	v.n++
	if s == nil || s.Record == nil || s.Sign1 == nil {
		return &ChainError{Index: idx, Err: fmt.Errorf("%w: nil record", ErrMalformed)}
	}
	r := s.Record
	fail := func(err error) error { return &ChainError{Index: idx, Seq: r.Seq, Err: err} }

	started := v.heads != nil
	if started && !bytes.Equal(s.KID(), v.kid) {
		return fail(fmt.Errorf("%w: kid %x, chain's kid %x", ErrKeyID, s.KID(), v.kid))
	}
	if started && r.Seq <= v.lastSeq {
		return fail(fmt.Errorf("%w: %d after %d", ErrSeqOrder, r.Seq, v.lastSeq))
	}
	h, seen := v.heads[r.Device]
	switch {
	case !seen && r.Prev != nil:
		return fail(fmt.Errorf("%w: device %s, prev %s", ErrFirstHasPrev, r.Device, r.Prev))
	case seen && r.Prev == nil:
		return fail(fmt.Errorf("%w: device %s: prev null, want %s", ErrChainBreak, r.Device, h.id))
	case seen && *r.Prev != h.id:
		return fail(fmt.Errorf("%w: device %s: prev %s, want %s", ErrChainBreak, r.Device, r.Prev, h.id))
	case seen && r.Serial != h.serial:
		return fail(fmt.Errorf("%w: device %s: %q, was %q", ErrSerialChanged, r.Device, r.Serial, h.serial))
	}

	if !started {
		v.kid = bytes.Clone(s.KID())
		v.heads = make(map[DeviceID]deviceHead)
	}
	v.lastSeq = r.Seq
	v.heads[r.Device] = deviceHead{id: s.ID, serial: r.Serial}
	return nil
}

// Head returns the id of the latest accepted record of device d: what the
// device's next record must name as prev.
func (v *Verifier) Head(d DeviceID) (ID, bool) {
	h, ok := v.heads[d]
	return h.id, ok
}

// LastSeq returns the sequence number of the latest accepted record, 0 if
// none.
func (v *Verifier) LastSeq() uint64 { return v.lastSeq }

// Devices returns the number of devices seen.
func (v *Verifier) Devices() int { return len(v.heads) }

// VerifyChain applies the rules of Verifier to recs in the order given and
// returns the first *ChainError, or nil. It does not check signatures.
func VerifyChain(recs []*Signed) error {
	var v Verifier
	for _, s := range recs {
		if err := v.Add(s); err != nil {
			return err
		}
	}
	return nil
}
