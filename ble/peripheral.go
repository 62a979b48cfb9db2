package ble

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// PeripheralConn is the pledge's side of one BLE link: the BTP server on
// its GATT service, as a net.PacketConn whose only peer is the gateway. A
// pledge's DTLS client (coap.DialDTLS, so testbed/mote unchanged) runs on
// it; one PeripheralConn carries one DTLS association, and the pledge
// opens a new link for the next (mote.Config.Listen is called per
// association).
type PeripheralConn struct {
	conn    *btp.Conn
	local   Addr
	peer    Addr
	inbound chan []byte
	deadlines
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	dropInbound, dropFull atomic.Uint64
}

var _ net.PacketConn = (*PeripheralConn)(nil)

// DTLSFlightInterval is the DTLS retransmission interval for the session
// on this link (coap.FlightIntervalHinter): see the constant.
func (p *PeripheralConn) DTLSFlightInterval() time.Duration { return DTLSFlightInterval }

// NewPeripheralConn accepts the BTP handshake on link (the central wrote
// C1 and subscribes to C2) and returns the session as a PacketConn. It
// owns link from the call on.
func NewPeripheralConn(ctx context.Context, link btp.PeripheralLink, opts ...Option) (*PeripheralConn, error) {
	cfg, err := newConfig(DefaultPeripheralName, opts)
	if err != nil {
		_ = link.Close()
		return nil, err
	}
	conn, err := btp.Server(ctx, link, cfg.btpOptions()...)
	if err != nil {
		return nil, err
	}
	pc := &PeripheralConn{
		conn:      conn,
		local:     Addr{Device: cfg.name},
		peer:      Addr{Device: link.Peer()},
		inbound:   make(chan []byte, cfg.queueLen),
		deadlines: newDeadlines(),
		done:      make(chan struct{}),
	}
	pc.wg.Go(pc.pump)
	return pc, nil
}

func (pc *PeripheralConn) pump() {
	for {
		m, err := pc.conn.Receive(context.Background())
		if err != nil {
			close(pc.inbound)
			return
		}
		select {
		case pc.inbound <- m:
		default:
			pc.dropInbound.Add(1)
		}
	}
}

// ReadFrom returns the next datagram from the gateway. After the session
// ends it returns an error wrapping net.ErrClosed and the session's cause
// (btp.ErrAckTimeout, btp.ErrLinkClosed, ...).
func (pc *PeripheralConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case m, ok := <-pc.inbound:
		if !ok {
			return 0, nil, pc.opError("read", pc.endErr())
		}
		return copy(p, m), pc.peer, nil
	case <-pc.rd.Done():
		return 0, nil, pc.opError("read", os.ErrDeadlineExceeded)
	case <-pc.done:
		return 0, nil, pc.opError("read", net.ErrClosed)
	}
}

// WriteTo sends p as one BTP message to the gateway; addr must be
// RemoteAddr (compared as strings). A full send queue drops p, counted.
func (pc *PeripheralConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-pc.done:
		return 0, pc.opError("write", net.ErrClosed)
	default:
	}
	if pc.wd.Err() != nil {
		return 0, pc.opError("write", os.ErrDeadlineExceeded)
	}
	if addr == nil || addr.String() != pc.peer.String() {
		return 0, pc.opError("write", fmt.Errorf("%w: %v (the peer is %v)", ErrNoRoute, addr, pc.peer))
	}
	switch err := pc.conn.TrySend(p); {
	case err == nil:
	case errors.Is(err, btp.ErrQueueFull):
		pc.dropFull.Add(1)
	case errors.Is(err, btp.ErrClosed):
		return 0, pc.opError("write", pc.endErr())
	default:
		return 0, pc.opError("write", err)
	}
	return len(p), nil
}

func (pc *PeripheralConn) endErr() error {
	if err := pc.conn.Err(); err != nil && !errors.Is(err, btp.ErrClosed) {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return net.ErrClosed
}

// Close ends the BTP session and closes the link.
func (pc *PeripheralConn) Close() error {
	first := false
	pc.once.Do(func() {
		first = true
		close(pc.done)
		_ = pc.conn.Close()
		pc.wg.Wait()
		pc.rd.Set(time.Time{})
		pc.wd.Set(time.Time{})
	})
	if !first {
		return pc.opError("close", net.ErrClosed)
	}
	return nil
}

// LocalAddr is the pledge's own address (WithName).
func (pc *PeripheralConn) LocalAddr() net.Addr { return pc.local }

// RemoteAddr is the gateway's address: the one to dial and write to.
func (pc *PeripheralConn) RemoteAddr() net.Addr { return pc.peer }

// Params are the session's negotiated BTP parameters.
func (pc *PeripheralConn) Params() btp.Params { return pc.conn.Params() }

// Done is closed when the BTP session has ended.
func (pc *PeripheralConn) Done() <-chan struct{} { return pc.conn.Done() }

// PeripheralStats counts a PeripheralConn's traffic.
type PeripheralStats struct {
	BTP btp.Stats
	// DroppedInbound: the receive queue was full. DroppedQueueFull: the
	// send queue was full.
	DroppedInbound, DroppedQueueFull uint64
}

// Stats returns a snapshot of the counters.
func (pc *PeripheralConn) Stats() PeripheralStats {
	return PeripheralStats{BTP: pc.conn.Stats(), DroppedInbound: pc.dropInbound.Load(), DroppedQueueFull: pc.dropFull.Load()}
}

func (pc *PeripheralConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "ble", Addr: pc.local, Err: err}
}
