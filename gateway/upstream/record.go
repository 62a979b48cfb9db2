package upstream

import (
	"context"
	"encoding/hex"
	"strconv"
	"time"
)

// Record is one signed record as the outbox hands it out.
type Record struct {
	// Pos is the record's position in the outbox: commit order, which
	// is the delivery order and what cursors count. Records are signed in
	// parallel and may commit slightly out of sequence-number order; a
	// device's records are always in both orders.
	Pos    uint64
	Seq    uint64    // gateway sequence number (record key 6)
	ID     [32]byte  // SHA-256 of COSE: the idempotency key
	Type   string    // "enroll", "checkin", ...
	Device [32]byte  // device id
	Serial string    // device serial number
	Time   time.Time // when the gateway signed the record
	COSE   []byte    // the COSE_Sign1 bytes, never modified
}

// IDHex is the record id in lower-case hex: the MQTT record-id user
// property and the webhook Idempotency-Key.
func (r Record) IDHex() string { return hex.EncodeToString(r.ID[:]) }

// DeviceHex is the device id in lower-case hex (the last MQTT topic level).
func (r Record) DeviceHex() string { return hex.EncodeToString(r.Device[:]) }

// Source is the outbox, one cursor per sink.
type Source interface {
	// Next returns up to limit records after the sink's cursor, in Pos order, skipping records parked for this sink.
	Next(ctx context.Context, sink string, limit int) ([]Record, error)
	// Ack moves the sink's cursor to pos (all records at or before pos delivered or parked). Durable when it returns.
	Ack(ctx context.Context, sink string, pos uint64) error
	// Park records that rec will not be delivered to sink (permanent refusal) with a reason; durable.
	Park(ctx context.Context, sink string, rec Record, reason string) error
	// Notify returns a channel that receives (non-blocking, coalesced) when new records are committed.
	Notify() <-chan struct{}
	// Backlog returns how many records are after the sink's cursor and the time of the oldest.
	Backlog(ctx context.Context, sink string) (n int, oldest time.Time, err error)
}

// State is what became of one record handed to a Sink.
type State uint8

const (
	// Retry: not delivered this time (transient failure, or not attempted
	// because an earlier record failed). It is the zero value, so a record
	// a sink says nothing about is retried, never lost.
	Retry State = iota
	// Delivered: the upstream acknowledged the record (MQTT PUBACK with a
	// reason code below 0x80, HTTP 2xx).
	Delivered
	// Parked: the upstream refused the record for good (MQTT 0x87, HTTP
	// 400, ...). The Deliverer records it with Source.Park and moves on.
	Parked
)

// String returns "retry", "delivered" or "parked".
func (s State) String() string {
	switch s {
	case Retry:
		return "retry"
	case Delivered:
		return "delivered"
	case Parked:
		return "parked"
	default:
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
}

// Outcome is the fate of one record.
type Outcome struct {
	State State
	// Reason says why a record was parked (stored with it by Source.Park)
	// or what failed for a retry (logged). Empty for Delivered.
	Reason string
	// RetryAfter is the upstream's minimum wait before the next attempt
	// (HTTP Retry-After), zero if it gave none. Only for Retry.
	RetryAfter time.Duration
}

// Result is what a Sink reports for a batch: Outcomes[i] is the fate of
// recs[i]. A missing entry means Retry.
type Result struct {
	Outcomes []Outcome
}

// outcome returns the outcome of record i, Retry if the sink gave none.
func (r Result) outcome(i int) Outcome {
	if i < len(r.Outcomes) {
		return r.Outcomes[i]
	}
	return Outcome{State: Retry, Reason: "no outcome reported"}
}

// Sink delivers records to one upstream.
type Sink interface {
	// Name identifies the sink: its cursor in the Source, its metrics
	// label and its log field. Stable across restarts.
	Name() string
	// Deliver attempts recs, which are in Pos order, and reports an
	// outcome per record. It must never let a record of a device reach the
	// upstream before an earlier record of the same device in recs was
	// delivered or parked. An error means the sink could not work at all
	// (link down); outcomes it did report still count.
	Deliver(ctx context.Context, recs []Record) (Result, error)
}

// Runner is implemented by sinks that hold a connection (MQTT) or a
// connection pool (webhook). The Deliverer runs it for as long as its own
// Run, and the sink is usable while Run runs. Run returns nil when ctx is
// cancelled.
type Runner interface {
	Run(ctx context.Context) error
}

// Waker is implemented by sinks that know when a lost link comes back (the
// MQTT sink). The Deliverer cuts a backoff short when the channel fires.
type Waker interface {
	Wake() <-chan struct{}
}
