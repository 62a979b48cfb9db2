//go:build bluez && linux

package bluez

import (
	"context"
	"fmt"
	"sync"
	"time"

	"tinygo.org/x/bluetooth"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// link is one BLE connection to a pledge's onboarding service: writes of
// C1 (ATT write requests, confirmed by the pledge) and indications on C2
// (confirmed by BlueZ when they arrive).
type link struct {
	s    *Scanner
	dev  bluetooth.Device
	addr string
	c1   bluetooth.DeviceCharacteristic
	c2   bluetooth.DeviceCharacteristic
	mtu  int
	in   chan []byte

	mu         sync.Mutex
	subscribed bool
	once       sync.Once
	cause      error
	closed     chan struct{}
}

var _ btp.CentralLink = (*link)(nil)

func (l *link) closedErr() error {
	return fmt.Errorf("%w: %s: %w", btp.ErrLinkClosed, l.addr, l.cause)
}

// Send writes v to C1 with a write request. BlueZ's WriteValue cannot be
// cancelled; ctx is checked before it.
func (l *link) Send(ctx context.Context, v []byte) error {
	select {
	case <-l.closed:
		return l.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	if _, err := l.c1.Write(v); err != nil {
		l.shut(fmt.Errorf("write C1: %w", err))
		return l.closedErr()
	}
	return nil
}

// Subscribe enables indications on C2 (BlueZ StartNotify writes the CCCD).
func (l *link) Subscribe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := l.c2.EnableNotifications(func(b []byte) {
		v := append([]byte(nil), b...)
		select {
		case l.in <- v:
		default:
			l.shut(errOverflow)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe C2: %w", err)
	}
	l.mu.Lock()
	l.subscribed = true
	l.mu.Unlock()
	return nil
}

// Receive returns the next indication on C2.
func (l *link) Receive(ctx context.Context) ([]byte, error) {
	select {
	case v := <-l.in:
		return v, nil
	default:
	}
	select {
	case v := <-l.in:
		return v, nil
	case <-l.closed:
		return nil, l.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ATTMTU is the MTU BlueZ reports for C1 (BlueZ 5.62 and later), or 0.
func (l *link) ATTMTU() int { return l.mtu }

// Peer is the pledge's BLE address.
func (l *link) Peer() string { return l.addr }

// Close unsubscribes from C2, which ends the BTP session at the pledge,
// and disconnects.
func (l *link) Close() error {
	l.shut(errClosed)
	return nil
}

func (l *link) shut(cause error) {
	l.once.Do(func() {
		l.cause = cause
		close(l.closed)
		go l.teardown()
	})
}

// teardown runs outside the indication callback, which BlueZ calls from
// the D-Bus signal goroutine.
func (l *link) teardown() {
	l.mu.Lock()
	sub := l.subscribed
	l.mu.Unlock()
	if sub {
		_ = l.c2.EnableNotifications(nil)
	}
	_ = l.dev.Disconnect()
	l.s.release(l.addr)
}

// watch ends the link when BlueZ no longer reports the device connected.
func (l *link) watch() {
	t := time.NewTicker(l.s.poll)
	defer t.Stop()
	for {
		select {
		case <-l.closed:
			return
		case <-t.C:
			if ok, err := l.dev.Connected(); err != nil || !ok {
				l.shut(errDisconnected)
				return
			}
		}
	}
}
