package ble

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// Defaults of Central and PeripheralConn.
const (
	// DefaultMaxLinks bounds a Central's BLE sessions, in handshake or
	// established. A BlueZ controller holds a handful of LE connections at
	// once; the simulator holds as many as asked.
	DefaultMaxLinks = 64
	// DefaultQueueLen bounds datagrams received and not yet read, over all
	// sessions of a Central or on a PeripheralConn.
	DefaultQueueLen = 256
	// DefaultCentralName and DefaultPeripheralName are the local device
	// names of LocalAddr when WithName is not given.
	DefaultCentralName    = "gateway"
	DefaultPeripheralName = "pledge"
	// DTLSFlightInterval is the DTLS handshake retransmission interval a
	// Central or PeripheralConn asks of the DTLS endpoint running on it
	// (coap.FlightIntervalHinter). BTP is reliable and in order, so a
	// retransmission only helps after a datagram was dropped for a full
	// send queue; and at ATT_MTU 23 a 1.2 KB certificate flight takes
	// seconds to cross, longer than the usual 1 s interval, so that
	// interval would queue a second copy behind the first, and a third.
	// See docs/decisions/0013-dtls-over-ble.md.
	DTLSFlightInterval = 4 * time.Second
)

// Option configures a Central or a PeripheralConn. Options validate their
// arguments; constructors return the first error, wrapping
// ErrInvalidOption.
type Option func(*config) error

type config struct {
	log      zerolog.Logger
	btp      []btp.Option
	maxLinks int
	queueLen int
	name     string
}

func newConfig(name string, opts []Option) (config, error) {
	cfg := config{log: zerolog.Nop(), maxLinks: DefaultMaxLinks, queueLen: DefaultQueueLen, name: name}
	for _, o := range opts {
		if o == nil {
			return config{}, invalid("nil option")
		}
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithLogger sets the logger; BTP sessions log through it too unless
// WithBTP sets another. The zero Logger discards. Nothing is logged per
// datagram.
func WithLogger(l zerolog.Logger) Option {
	return func(c *config) error {
		c.log = l.With().Str("component", "ble").Logger()
		return nil
	}
}

// WithBTP passes options to every BTP session (window, message limit,
// timers, clock).
func WithBTP(opts ...btp.Option) Option {
	return func(c *config) error {
		for _, o := range opts {
			if o == nil {
				return invalid("nil BTP option")
			}
		}
		c.btp = append(c.btp, opts...)
		return nil
	}
}

// WithMaxLinks bounds a Central's sessions (1..65535, default
// DefaultMaxLinks). Links beyond it are closed at once and counted.
func WithMaxLinks(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 65535 {
			return invalid("max links %d not in [1,65535]", n)
		}
		c.maxLinks = n
		return nil
	}
}

// WithQueueLen bounds received datagrams not yet read (1..65536, default
// DefaultQueueLen). A datagram that finds the queue full is dropped and
// counted, as a full socket buffer drops UDP.
func WithQueueLen(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1<<16 {
			return invalid("queue length %d not in [1,65536]", n)
		}
		c.queueLen = n
		return nil
	}
}

// WithName sets the local device name reported by LocalAddr (the
// adapter's BLE address, or a simulated name).
func WithName(name string) Option {
	return func(c *config) error {
		if name == "" || len(name) > 64 {
			return invalid("name %q", name)
		}
		c.name = name
		return nil
	}
}

func (c config) btpOptions() []btp.Option {
	return append([]btp.Option{btp.WithLogger(c.log)}, c.btp...)
}
