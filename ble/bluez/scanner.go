//go:build bluez && linux

package bluez

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"tinygo.org/x/bluetooth"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/btp"
)

// Defaults of a Scanner.
const (
	// DefaultAdapter is BlueZ's first controller.
	DefaultAdapter = "hci0"
	// DefaultRetryDelay is how long a pledge whose connection or service
	// discovery failed is ignored.
	DefaultRetryDelay = 10 * time.Second
	// DefaultPollInterval is how often a link checks that its device is
	// still connected. (BlueZ reports remote disconnections only as a
	// property change tinygo does not surface; BTP's keep-alive would find
	// out too, within two send-ack delays.)
	DefaultPollInterval = time.Second
	// indicationQueue bounds indications received and not yet read; BTP's
	// window keeps fewer in flight, so overflowing it is a protocol
	// violation and ends the link.
	indicationQueue = 64
)

// Option configures a Scanner.
type Option func(*Scanner) error

// WithLogger sets the logger. Nothing is logged per packet.
func WithLogger(l zerolog.Logger) Option {
	return func(s *Scanner) error {
		s.log = l.With().Str("component", "bluez").Logger()
		return nil
	}
}

// WithRetryDelay sets how long a pledge that failed to connect is ignored
// (default DefaultRetryDelay).
func WithRetryDelay(d time.Duration) Option {
	return func(s *Scanner) error {
		if d <= 0 {
			return fmt.Errorf("%w: retry delay %v", ErrInvalidOption, d)
		}
		s.retryDelay = d
		return nil
	}
}

// WithPollInterval sets how often links check their connection (default
// DefaultPollInterval).
func WithPollInterval(d time.Duration) Option {
	return func(s *Scanner) error {
		if d <= 0 {
			return fmt.Errorf("%w: poll interval %v", ErrInvalidOption, d)
		}
		s.poll = d
		return nil
	}
}

// Scanner is the BlueZ LinkSource. It keeps one link per device: a pledge
// already connected is not connected again until its link closes.
type Scanner struct {
	adapter    *bluetooth.Adapter
	service    bluetooth.UUID
	c1, c2     bluetooth.UUID
	log        zerolog.Logger
	retryDelay time.Duration
	poll       time.Duration
	now        func() time.Time

	mu    sync.Mutex
	busy  map[string]bool
	retry map[string]time.Time
}

var _ ble.LinkSource = (*Scanner)(nil)

// New enables the BlueZ adapter id ("hci0") and returns a Scanner on it.
// It needs bluetoothd running and access to the system D-Bus.
func New(id string, opts ...Option) (*Scanner, error) {
	if id == "" {
		id = DefaultAdapter
	}
	s := &Scanner{
		adapter:    bluetooth.NewAdapter(id),
		log:        zerolog.Nop(),
		retryDelay: DefaultRetryDelay,
		poll:       DefaultPollInterval,
		now:        time.Now,
		busy:       make(map[string]bool),
		retry:      make(map[string]time.Time),
	}
	var err error
	if s.service, err = bluetooth.ParseUUID(ble.ServiceUUID); err != nil {
		return nil, err
	}
	if s.c1, err = bluetooth.ParseUUID(ble.C1UUID); err != nil {
		return nil, err
	}
	if s.c2, err = bluetooth.ParseUUID(ble.C2UUID); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if err := s.adapter.Enable(); err != nil {
		return nil, fmt.Errorf("bluez: enable %s: %w", id, err)
	}
	return s, nil
}

// Accept scans until a pledge advertising the onboarding service shows
// up, connects to it and returns the link. A pledge that fails to connect
// or lacks C1/C2 is skipped for the retry delay; Accept goes on scanning.
// Only ctx's end or a scan that cannot run (adapter off) returns an error.
//
// BlueZ's Device1.Connect cannot be cancelled: a cancelled ctx ends the
// scan at once, but a connection attempt in progress runs to BlueZ's own
// timeout before Accept returns.
func (s *Scanner) Accept(ctx context.Context) (btp.CentralLink, error) {
	for {
		res, err := s.scan(ctx)
		if err != nil {
			return nil, err
		}
		addr := res.Address.String()
		dev, err := s.adapter.Connect(res.Address, bluetooth.ConnectionParams{})
		if err != nil {
			s.log.Debug().Str("device", addr).Err(err).Msg("connect failed")
			s.backOff(addr)
			continue
		}
		l, err := s.open(dev, addr)
		if err != nil {
			s.log.Debug().Str("device", addr).Err(err).Msg("onboarding service not usable")
			_ = dev.Disconnect()
			s.backOff(addr)
			continue
		}
		if ctx.Err() != nil {
			_ = l.Close()
			return nil, ctx.Err()
		}
		return l, nil
	}
}

// scan returns the first advertisement of the onboarding service from a
// device that has no link and is not backing off.
func (s *Scanner) scan(ctx context.Context) (bluetooth.ScanResult, error) {
	found := make(chan bluetooth.ScanResult, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.adapter.Scan(func(a *bluetooth.Adapter, r bluetooth.ScanResult) {
			if !r.HasServiceUUID(s.service) || !s.eligible(r.Address.String()) {
				return
			}
			select {
			case found <- r:
				_ = a.StopScan()
			default:
			}
		})
	}()
	select {
	case r := <-found:
		<-done
		return r, nil
	case err := <-done:
		select {
		case r := <-found:
			return r, nil
		default:
		}
		if err == nil {
			err = errors.New("scan stopped")
		}
		return bluetooth.ScanResult{}, fmt.Errorf("bluez: scan: %w", err)
	case <-ctx.Done():
		_ = s.adapter.StopScan()
		<-done
		return bluetooth.ScanResult{}, ctx.Err()
	}
}

func (s *Scanner) eligible(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[addr] {
		return false
	}
	if t, ok := s.retry[addr]; ok {
		if s.now().Before(t) {
			return false
		}
		delete(s.retry, addr)
	}
	return true
}

func (s *Scanner) backOff(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retry[addr] = s.now().Add(s.retryDelay)
	// Forget stale entries so the map stays bounded by recent failures.
	for a, t := range s.retry {
		if s.now().After(t) {
			delete(s.retry, a)
		}
	}
}

func (s *Scanner) release(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, addr)
}

// open discovers the service and its characteristics on a connected
// device.
func (s *Scanner) open(dev bluetooth.Device, addr string) (*link, error) {
	svcs, err := dev.DiscoverServices([]bluetooth.UUID{s.service})
	if err != nil {
		return nil, fmt.Errorf("discover service: %w", err)
	}
	chars, err := svcs[0].DiscoverCharacteristics([]bluetooth.UUID{s.c1, s.c2})
	if err != nil {
		return nil, fmt.Errorf("discover C1/C2: %w", err)
	}
	mtu := 0
	if m, err := chars[0].GetMTU(); err == nil {
		mtu = int(m)
	}
	s.mu.Lock()
	s.busy[addr] = true
	s.mu.Unlock()
	l := &link{
		s:      s,
		dev:    dev,
		addr:   addr,
		c1:     chars[0],
		c2:     chars[1],
		mtu:    mtu,
		in:     make(chan []byte, indicationQueue),
		closed: make(chan struct{}),
	}
	go l.watch()
	return l, nil
}
