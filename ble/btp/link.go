package btp

import (
	"context"
	"time"
)

// Link is one end of a GATT connection to a BTP service (§4.18.4): the
// central writes characteristic C1, the peripheral indicates
// characteristic C2. ATT write requests and indications are each confirmed
// by the peer's ATT layer and a client has one outstanding at a time
// (Bluetooth Core Vol 3 Part F §3.3.2, §3.4.5.1, §3.4.7.2), so values
// arrive reliably and in order; BTP adds messages, flow control and
// liveness on top.
//
// Send and Receive may be called concurrently with each other, each from
// one goroutine at a time. Close unblocks both.
type Link interface {
	// Send transmits one value of at most ATTMTU()-3 octets — a write of
	// C1 from the central, an indication on C2 from the peripheral — and
	// returns once the peer's ATT layer confirmed it. It must not retain
	// value.
	Send(ctx context.Context, value []byte) error
	// Receive returns the next value from the peer: an indication on C2 at
	// the central, a write of C1 at the peripheral. After the link is gone
	// it returns an error wrapping ErrLinkClosed.
	Receive(ctx context.Context) ([]byte, error)
	// ATTMTU is the ATT_MTU negotiated on the link, or 0 if unknown.
	ATTMTU() int
	// Peer is the other device's BLE address (or simulated name).
	Peer() string
	// Close ends the session: the central unsubscribes from C2, which
	// closes the BTP session (§4.18.4), and releases the connection.
	Close() error
}

// CentralLink is the GATT client's end (the gateway in Tumbler).
type CentralLink interface {
	Link
	// Subscribe enables indications on C2 by writing its CCCD. The
	// peripheral answers the handshake only after it (§4.18.3.2).
	Subscribe(ctx context.Context) error
}

// PeripheralLink is the GATT server's end (the pledge in Tumbler).
type PeripheralLink interface {
	Link
	// WaitSubscribed returns once the central enabled indications on C2.
	WaitSubscribed(ctx context.Context) error
}

// Clock is the time source of the handshake timer and a Conn's ack, idle
// and keep-alive timers. Tests inject a manual clock.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless
	// the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened yet.
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
