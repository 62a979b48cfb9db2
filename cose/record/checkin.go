package record

import (
	"fmt"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Check-in body keys (docs/records.cddl checkin-body). Non-negative keys
// are the device's, negative keys the gateway's.
const (
	checkInUptime    = 1
	checkInFirmware  = 2
	checkInBattery   = 3
	checkInReboots   = 4
	checkInOSCORESeq = -1
	checkInNextDue   = -2
)

// MaxOSCORESeq is the largest OSCORE sender sequence number, 2^40 - 1
// (RFC 8613 §7.2.1).
const MaxOSCORESeq = 1<<40 - 1

// CheckInBody is the body of a "checkin" record: a device checked in over
// OSCORE. Keys 1..4 are the device's check-in payload (checkin-request)
// unchanged; keys the device sent that the gateway does not interpret are
// kept in Extra; the gateway's own fields have negative keys, so the two
// never collide.
//
//	checkin-body = {
//	  1 => uint,                     ; uptime, seconds
//	  2 => tstr,                     ; firmware version
//	  3 => percent / null,           ; battery (0..100); null: mains powered or not reported
//	  4 => uint,                     ; reboot count
//	  ? -1 => oscore-seq,            ; OSCORE Partial IV of the request, 0..2^40-1
//	  ? -2 => unix-time,             ; next check-in due
//	  * device-extra-key => any,     ; 0 / uint .ge 5: device keys kept as received
//	}
//
// docs/records.cddl; RFC 8613 §6.1 (Partial IV).
type CheckInBody struct {
	// Uptime is the device's uptime in seconds.
	Uptime uint64
	// Firmware is the device's firmware version.
	Firmware string
	// Battery is the battery charge in percent (0..100), nil if the device
	// is mains powered or did not report it.
	Battery *uint8
	// Reboots is the device's reboot count.
	Reboots uint64

	// OSCORESeq is the OSCORE Partial IV (the device's sender sequence
	// number) of the check-in request, nil if not recorded. Gateway-added.
	OSCORESeq *uint64
	// NextDue is when the next check-in is due, zero if not recorded.
	// Gateway-added.
	NextDue time.Time

	// Extra holds the device's keys other than 1..4 (0 and 5 and above),
	// each value one CBOR data item. Encoding re-encodes the values in
	// Core Deterministic Encoding; a value the device sent that way is
	// kept byte for byte.
	Extra Body
}

// RecordType returns TypeCheckIn.
func (*CheckInBody) RecordType() Type { return TypeCheckIn }

// isDeviceExtraKey reports whether k is a device key the gateway does not
// interpret: device-extra-key = 0 / uint .ge 5.
func isDeviceExtraKey(k int64) bool { return k == 0 || k >= 5 }

func (c *CheckInBody) encode() (Body, error) {
	w := newBodyWriter("checkin")
	w.uint(checkInUptime, c.Uptime)
	w.text(checkInFirmware, c.Firmware, 0, math.MaxInt)
	switch {
	case c.Battery == nil:
		w.null(checkInBattery)
	case *c.Battery > 100:
		w.fail(checkInBattery, "battery %d%% over 100", *c.Battery)
	default:
		w.uint(checkInBattery, uint64(*c.Battery))
	}
	w.uint(checkInReboots, c.Reboots)
	if c.OSCORESeq != nil {
		if *c.OSCORESeq > MaxOSCORESeq {
			w.fail(checkInOSCORESeq, "OSCORE sequence number %d over 2^40-1", *c.OSCORESeq)
		}
		w.uint(checkInOSCORESeq, *c.OSCORESeq)
	}
	if !c.NextDue.IsZero() {
		w.time(checkInNextDue, c.NextDue)
	}
	extra, err := canonicalBody(c.Extra)
	if err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(extra) {
		if !isDeviceExtraKey(k) {
			w.fail(k, "Extra key collides with a defined key (Extra holds 0 and 5 and above)")
		}
		w.b[k] = extra[k]
	}
	return w.finish()
}

func (c *CheckInBody) decode(b Body) error {
	f := &fieldReader{what: "checkin", b: b}
	out := CheckInBody{
		Uptime:   f.uint(checkInUptime),
		Firmware: f.text(checkInFirmware, 0, math.MaxInt),
	}
	if v := f.get(checkInBattery, false); v != nil && !isNull(v) {
		n, ok := uintValue(v)
		if !ok || n > 100 {
			f.fail(checkInBattery, "not a percentage (0..100) or null")
		}
		p := uint8(min(n, 100))
		out.Battery = &p
	}
	out.Reboots = f.uint(checkInReboots)
	if out.OSCORESeq = f.optUint(checkInOSCORESeq); out.OSCORESeq != nil && *out.OSCORESeq > MaxOSCORESeq {
		f.fail(checkInOSCORESeq, "OSCORE sequence number over 2^40-1")
	}
	out.NextDue = f.time(checkInNextDue, true, false)
	for _, k := range sortedKeys(b) {
		switch {
		case k >= checkInUptime && k <= checkInReboots, k == checkInOSCORESeq, k == checkInNextDue:
		case isDeviceExtraKey(k):
			if out.Extra == nil {
				out.Extra = Body{}
			}
			out.Extra[k] = b[k]
		default:
			f.fail(k, "negative key not defined for version %d", Version)
		}
	}
	if err := f.finish(); err != nil {
		return err
	}
	*c = out
	return nil
}

// ParseCheckInRequest maps a device's check-in payload to a check-in body:
//
//	checkin-request = {
//	  1 => uint,                     ; uptime, seconds
//	  2 => tstr,                     ; firmware version
//	  ? 3 => percent / null,         ; battery; absent is recorded as null
//	  4 => uint,                     ; reboot count
//	  * device-extra-key => any,     ; kept in Extra
//	}
//
// The payload must be well-formed CBOR within cose's limits without
// duplicate keys (after canonical re-encoding); it need not be
// deterministically encoded: values are re-encoded canonically. Negative
// keys, reserved for the gateway, are refused. Every failure wraps ErrBody
// (and ErrMalformed for CBOR-level ones). The gateway adds OSCORESeq and
// NextDue itself. docs/records.cddl.
func ParseCheckInRequest(payload []byte) (*CheckInBody, error) {
	canon, err := canonical(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: check-in request: %w", ErrBody, err)
	}
	pairs, err := mapPairs(canon, "check-in request", ErrBody)
	if err != nil {
		return nil, err
	}
	b := make(Body, len(pairs)+1)
	for _, p := range pairs {
		k, ok := intValue(p.k)
		if !ok || k < 0 {
			d, _ := cbor.Diagnose(p.k)
			return nil, fmt.Errorf("%w: check-in request key %s (want an unsigned integer)", ErrBody, d)
		}
		b[k] = cbor.RawMessage(p.v)
	}
	if _, ok := b[checkInBattery]; !ok {
		b[checkInBattery] = cbor.RawMessage{cborNull}
	}
	c := &CheckInBody{}
	if err := c.decode(b); err != nil {
		return nil, err
	}
	return c, nil
}
