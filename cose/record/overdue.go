package record

import "time"

// Overdue body keys (docs/records.cddl overdue-body).
const (
	overdueLastCheckIn = 1
	overdueDue         = 2
	overdueMissed      = 3
)

// OverdueBody is the body of an "overdue" record: the gateway's tracker saw
// a device miss its check-in.
//
//	overdue-body = {
//	  1 => unix-time / null,   ; last check-in, null if the device never checked in
//	  2 => unix-time,          ; when the check-in was due
//	  3 => uint,               ; check-in windows missed so far
//	}
//
// docs/records.cddl.
type OverdueBody struct {
	// LastCheckIn is the time of the last check-in; zero if the device
	// never checked in.
	LastCheckIn time.Time
	// Due is when the missed check-in was due.
	Due time.Time
	// Missed counts the check-in windows missed so far.
	Missed uint64
}

// RecordType returns TypeOverdue.
func (*OverdueBody) RecordType() Type { return TypeOverdue }

func (o *OverdueBody) encode() (Body, error) {
	w := newBodyWriter("overdue")
	if o.LastCheckIn.IsZero() {
		w.null(overdueLastCheckIn)
	} else {
		w.time(overdueLastCheckIn, o.LastCheckIn)
	}
	w.time(overdueDue, o.Due)
	w.uint(overdueMissed, o.Missed)
	return w.finish()
}

func (o *OverdueBody) decode(b Body) error {
	f := &fieldReader{what: "overdue", b: b}
	out := OverdueBody{
		LastCheckIn: f.time(overdueLastCheckIn, false, true),
		Due:         f.time(overdueDue, false, false),
		Missed:      f.uint(overdueMissed),
	}
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*o = out
	return nil
}
