package btp

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of a Conn without options. The timers are the specification's
// (§4.18.4; ../../shared/spec/thread-ble.md §4.1).
const (
	// DefaultWindow is the receive window offered or accepted, in packets
	// (CHIP platforms configure BLE_MAX_RECEIVE_WINDOW_SIZE 5; matter.js
	// centrals offer 6).
	DefaultWindow = 6
	// MinWindow is the smallest window accepted; CHIP's BleConfig.h
	// requires a receive window above 2. With 1, a side with nothing to
	// acknowledge could never send (a packet without an acknowledgement may
	// not take the peer's last slot, BTP_WINDOW_NO_ACK_SEND_THRESHOLD); with
	// 2, every stand-alone acknowledgement would leave the receiver at its
	// immediate-ack threshold and be answered at once, forever.
	MinWindow = 3
	// DefaultMaxMessage is the largest message sent or reassembled: the
	// 1024-octet PMTU cBRSKI assumes for DTLS (coap.DefaultDTLSMTU).
	DefaultMaxMessage = 1024
	// DefaultQueueLen bounds the messages waiting to be sent and the
	// reassembled messages waiting to be read.
	DefaultQueueLen = 16
	// DefaultHandshakeTimeout is BTP_CONN_RSP_TIMEOUT.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultAckTimeout is BTP_ACK_TIMEOUT: sent packets unacknowledged for
	// this long end the session.
	DefaultAckTimeout = 15 * time.Second
	// DefaultSendAckDelay bounds how long a received packet waits for an
	// acknowledgement to piggyback on before a stand-alone one is sent. The
	// specification allows up to BTP_ACK_TIMEOUT/3; CHIP uses 2.5 s.
	DefaultSendAckDelay = 2500 * time.Millisecond
	// DefaultIdleTimeout is BTP_CONN_IDLE_TIMEOUT: a session that carried
	// no message data for this long is closed.
	DefaultIdleTimeout = 30 * time.Second
)

// Option configures a Conn. Options validate their arguments; Client and
// Server return the first error, wrapping ErrInvalidOption.
type Option func(*config) error

type config struct {
	window           int
	maxMessage       int
	queueLen         int
	handshakeTimeout time.Duration
	ackTimeout       time.Duration
	sendAckDelay     time.Duration
	idleTimeout      time.Duration
	clock            Clock
	log              zerolog.Logger
}

func defaultConfig() config {
	return config{
		window:           DefaultWindow,
		maxMessage:       DefaultMaxMessage,
		queueLen:         DefaultQueueLen,
		handshakeTimeout: DefaultHandshakeTimeout,
		ackTimeout:       DefaultAckTimeout,
		sendAckDelay:     DefaultSendAckDelay,
		idleTimeout:      DefaultIdleTimeout,
		clock:            SystemClock{},
		log:              zerolog.Nop(),
	}
}

func newConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return config{}, invalid("nil option")
		}
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	if cfg.sendAckDelay >= cfg.ackTimeout {
		return config{}, invalid("send-ack delay %v not below the ack timeout %v", cfg.sendAckDelay, cfg.ackTimeout)
	}
	return cfg, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithWindow sets the receive window offered (central) or the largest one
// accepted (peripheral), MinWindow..255 packets. The negotiated window
// never exceeds it, whatever the peer answers.
func WithWindow(n int) Option {
	return func(c *config) error {
		if n < MinWindow || n > 255 {
			return invalid("window %d not in [%d,255]", n, MinWindow)
		}
		c.window = n
		return nil
	}
}

// WithMaxMessage sets the largest message sent or reassembled, 1..65535
// octets. It bounds the memory one session holds for reassembly.
func WithMaxMessage(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 0xffff {
			return invalid("max message %d not in [1,65535]", n)
		}
		c.maxMessage = n
		return nil
	}
}

// WithQueueLen bounds the send queue and the receive queue, in messages
// (1..4096). A reassembled message that finds the receive queue full is
// dropped and counted, as a datagram socket drops on a full buffer.
func WithQueueLen(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 4096 {
			return invalid("queue length %d not in [1,4096]", n)
		}
		c.queueLen = n
		return nil
	}
}

// WithHandshakeTimeout bounds the handshake (default
// DefaultHandshakeTimeout).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("handshake timeout %v", d)
		}
		c.handshakeTimeout = d
		return nil
	}
}

// WithAckTimeout sets how long sent packets may stay unacknowledged
// before the session fails with ErrAckTimeout (default DefaultAckTimeout).
func WithAckTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("ack timeout %v", d)
		}
		c.ackTimeout = d
		return nil
	}
}

// WithSendAckDelay sets how long an acknowledgement may wait for a data
// packet to ride on before a stand-alone one is sent; it must be below the
// ack timeout (default DefaultSendAckDelay).
func WithSendAckDelay(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("send-ack delay %v", d)
		}
		c.sendAckDelay = d
		return nil
	}
}

// WithIdleTimeout closes a session that carried no message data for d; 0
// disables it (default DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("idle timeout %v", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithClock sets the clock of the handshake and session timers.
func WithClock(clk Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return invalid("nil clock")
		}
		c.clock = clk
		return nil
	}
}

// WithLogger sets the logger. The zero Logger discards.
func WithLogger(l zerolog.Logger) Option {
	return func(c *config) error {
		c.log = l
		return nil
	}
}
