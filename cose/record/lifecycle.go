package record

import (
	"bytes"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// Bodies of the lifecycle records (docs/records.cddl transfer-body,
// repossess-body, reset-body, decommission-body, delegate-body).

// TransferBody is the body of a "transfer" record.
//
//	transfer-body = {
//	  1 => "out" / "in",
//	  2 => bstr .size 32,        ; SHA-256 of the transfer authorisation
//	  3 => bstr .size 32,        ; SHA-256 of the new owner's domain CA SPKI
//	  4 => unix-time,            ; the authorisation's not-after
//	}
type TransferBody struct {
	// Out is true on the old owner's gateway, false on the new one's.
	Out               bool
	AuthorizationHash [32]byte
	NewOwner          [32]byte
	NotAfter          time.Time
}

// RecordType returns TypeTransfer.
func (*TransferBody) RecordType() Type { return TypeTransfer }

func (b *TransferBody) encode() (Body, error) {
	w := newBodyWriter("transfer")
	w.text(1, map[bool]string{true: "out", false: "in"}[b.Out], 1, 3)
	w.bytes(2, b.AuthorizationHash[:])
	w.bytes(3, b.NewOwner[:])
	w.time(4, b.NotAfter)
	return w.finish()
}

func (b *TransferBody) decode(body Body) error {
	f := &fieldReader{what: "transfer", b: body}
	var out TransferBody
	switch f.text(1, 2, 3) {
	case "out":
		out.Out = true
	case "in":
	default:
		f.fail(1, `not "out" or "in"`)
	}
	out.AuthorizationHash, out.NewOwner = f.hash(2), f.hash(3)
	out.NotAfter = f.time(4, false, false)
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*b = out
	return nil
}

// Repossession sides, RepossessBody.Side: the new owner's gateway writes
// the enrollment (RepossessIn); the previous owner's gateway writes what
// the MASA's claims feed tells it, in order: the claim, its own objection,
// and the device gone.
const (
	RepossessIn       = ""
	RepossessClaimed  = "claimed"
	RepossessObjected = "objected"
	RepossessOut      = "out"
)

// RepossessBody is the body of a "repossess" record.
//
//	repossess-body = {
//	  1 => bstr .size 32,        ; SHA-256 of the recovery authority's order
//	  2 => unix-time,            ; end of the MASA's notice period
//	  ? 3 => "claimed" / "objected" / "out",  ; the previous owner's side; absent: "in"
//	  ? 4 => bstr .size 32,      ; with 3: SHA-256 of the claimant's domain CA SPKI
//	}
type RepossessBody struct {
	OrderHash   [32]byte
	NoticeUntil time.Time
	// Side is RepossessIn or one of the previous owner's sides.
	Side string
	// NewOwner names the claimant's domain; set exactly when Side is not
	// RepossessIn.
	NewOwner [32]byte
}

// RecordType returns TypeRepossess.
func (*RepossessBody) RecordType() Type { return TypeRepossess }

func validRepossessSide(s string) bool {
	switch s {
	case RepossessClaimed, RepossessObjected, RepossessOut:
		return true
	}
	return false
}

func (b *RepossessBody) encode() (Body, error) {
	w := newBodyWriter("repossess")
	w.bytes(1, b.OrderHash[:])
	w.time(2, b.NoticeUntil)
	if b.Side != RepossessIn {
		if !validRepossessSide(b.Side) {
			w.fail(3, "side %q", b.Side)
		}
		w.text(3, b.Side, 1, 16)
		w.bytes(4, b.NewOwner[:])
	}
	return w.finish()
}

func (b *RepossessBody) decode(body Body) error {
	f := &fieldReader{what: "repossess", b: body}
	var out RepossessBody
	out.OrderHash = f.hash(1)
	out.NoticeUntil = f.time(2, false, false)
	_, side := body[3]
	_, owner := body[4]
	switch {
	case side:
		out.Side = f.text(3, 1, 16)
		if !validRepossessSide(out.Side) {
			f.fail(3, "side %q", out.Side)
		}
		out.NewOwner = f.hash(4)
	case owner:
		f.fail(4, "new owner without a side")
	}
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*b = out
	return nil
}

// Reset initiators.
const (
	ResetByOperator = "operator"
	ResetByDevice   = "device"
	ResetByReadmit  = "readmit"
)

// ResetBody is the body of a "reset" record.
//
//	reset-body = {
//	  1 => "operator" / "device" / "readmit",
//	  ? 2 => tstr .size (1..256),   ; reason
//	  3 => [* cert-serial],         ; LDevIDs revoked
//	}
type ResetBody struct {
	Initiator string
	Reason    string // empty: absent
	// Revoked are the serial numbers (big-endian, no leading zero) of the
	// certificates revoked.
	Revoked [][]byte
}

// RecordType returns TypeReset.
func (*ResetBody) RecordType() Type { return TypeReset }

func (b *ResetBody) encode() (Body, error) {
	w := newBodyWriter("reset")
	switch b.Initiator {
	case ResetByOperator, ResetByDevice, ResetByReadmit:
	default:
		w.fail(1, "initiator %q", b.Initiator)
	}
	w.text(1, b.Initiator, 1, 16)
	if b.Reason != "" {
		w.text(2, b.Reason, 1, 256)
	}
	writeSerials(w, 3, b.Revoked)
	return w.finish()
}

func (b *ResetBody) decode(body Body) error {
	f := &fieldReader{what: "reset", b: body}
	var out ResetBody
	out.Initiator = f.text(1, 1, 16)
	switch out.Initiator {
	case ResetByOperator, ResetByDevice, ResetByReadmit:
	default:
		f.fail(1, "initiator %q", out.Initiator)
	}
	if _, ok := body[2]; ok {
		out.Reason = f.text(2, 1, 256)
	}
	out.Revoked = readSerials(f, 3)
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*b = out
	return nil
}

// DecommissionBody is the body of a "decommission" record.
//
//	decommission-body = {
//	  ? 1 => tstr .size (1..256),   ; reason
//	  2 => [* cert-serial],         ; LDevIDs revoked
//	}
type DecommissionBody struct {
	Reason  string
	Revoked [][]byte
}

// RecordType returns TypeDecommission.
func (*DecommissionBody) RecordType() Type { return TypeDecommission }

func (b *DecommissionBody) encode() (Body, error) {
	w := newBodyWriter("decommission")
	if b.Reason != "" {
		w.text(1, b.Reason, 1, 256)
	}
	writeSerials(w, 2, b.Revoked)
	return w.finish()
}

func (b *DecommissionBody) decode(body Body) error {
	f := &fieldReader{what: "decommission", b: body}
	var out DecommissionBody
	if _, ok := body[1]; ok {
		out.Reason = f.text(1, 1, 256)
	}
	out.Revoked = readSerials(f, 2)
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*b = out
	return nil
}

// DelegateBody is the body of a "delegate" record.
//
//	delegate-body = {
//	  1 => "start" / "end",
//	  2 => tstr .size (1..64),   ; delegation id
//	  3 => tstr .size (1..64),   ; the delegate's sink name
//	  4 => unix-time,            ; until
//	}
type DelegateBody struct {
	End        bool
	Delegation string
	Sink       string
	Until      time.Time
}

// RecordType returns TypeDelegate.
func (*DelegateBody) RecordType() Type { return TypeDelegate }

func (b *DelegateBody) encode() (Body, error) {
	w := newBodyWriter("delegate")
	w.text(1, map[bool]string{true: "end", false: "start"}[b.End], 3, 5)
	w.text(2, b.Delegation, 1, 64)
	w.text(3, b.Sink, 1, 64)
	w.time(4, b.Until)
	return w.finish()
}

func (b *DelegateBody) decode(body Body) error {
	f := &fieldReader{what: "delegate", b: body}
	var out DelegateBody
	switch f.text(1, 3, 5) {
	case "end":
		out.End = true
	case "start":
	default:
		f.fail(1, `not "start" or "end"`)
	}
	out.Delegation = f.text(2, 1, 64)
	out.Sink = f.text(3, 1, 64)
	out.Until = f.time(4, false, false)
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*b = out
	return nil
}

// maxRevoked bounds a list of revoked serials in one record.
const maxRevoked = 64

func writeSerials(w *bodyWriter, k int64, serials [][]byte) {
	if len(serials) > maxRevoked {
		w.fail(k, "%d serials (at most %d)", len(serials), maxRevoked)
		return
	}
	list := make([][]byte, len(serials))
	for i, s := range serials {
		if len(s) == 0 || len(s) > maxCertSerial || s[0] == 0 {
			w.fail(k, "serial of %d bytes (want 1..%d, no leading zero)", len(s), maxCertSerial)
			return
		}
		list[i] = s
	}
	b, err := cose.Marshal(list)
	if err != nil {
		w.fail(k, "%v", err)
		return
	}
	w.b[k] = b
}

func readSerials(f *fieldReader, k int64) [][]byte {
	v := f.get(k, false)
	if v == nil {
		return nil
	}
	var list []cbor.RawMessage
	if err := cose.Unmarshal(v, &list); err != nil || len(list) > maxRevoked {
		f.fail(k, "not an array of at most %d serials", maxRevoked)
		return nil
	}
	out := make([][]byte, 0, len(list))
	for _, item := range list {
		s, ok := stringValue(item, majorBstr)
		if !ok || len(s) == 0 || len(s) > maxCertSerial || s[0] == 0 {
			f.fail(k, "not a serial (bstr of 1..%d bytes, no leading zero)", maxCertSerial)
			return nil
		}
		out = append(out, bytes.Clone(s))
	}
	return out
}
