package coap

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Option numbers Tumbler's handlers understand beyond RFC 7252, for
// WithCriticalOptions.
const (
	// OptionOSCORE is the OSCORE option (RFC 8613 §2).
	OptionOSCORE message.OptionID = 9
	// OptionURIPathAbbrev is Uri-Path-Abbrev (draft-ietf-core-uri-path-abbrev,
	// proposed number 13; see ../shared/spec/cbrski.md §1.3).
	OptionURIPathAbbrev message.OptionID = 13
)

// Server defaults.
const (
	// DefaultDTLSMTU is the PMTU cBRSKI assumes for the DTLS handshake
	// (6LoWPAN 1280 minus join-proxy overhead; cbrski.md §1.4).
	DefaultDTLSMTU = 1024
	// DefaultHandshakeTimeout bounds a DTLS handshake; lossy meshes need
	// several flight retransmissions.
	DefaultHandshakeTimeout = 30 * time.Second
	// DefaultMaxPeers bounds DTLS associations, established or in handshake.
	DefaultMaxPeers = 4096
	// DefaultIdleTimeout closes a DTLS association without traffic.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxPayload is the largest request body accepted.
	DefaultMaxPayload = 16 << 10
	// DefaultExchangeLifetime is EXCHANGE_LIFETIME (RFC 7252 §4.8.2), how
	// long a Message ID is remembered for duplicate detection.
	DefaultExchangeLifetime = 247 * time.Second
	// DefaultDedupEntries bounds the Message IDs remembered per listener.
	DefaultDedupEntries = 1 << 16
	// DefaultUDPQueue bounds datagrams waiting for a ServeUDP worker.
	DefaultUDPQueue = 4096
	// DefaultUDPMTU is assumed for plain CoAP when choosing a block size
	// (the IPv6 minimum link MTU).
	DefaultUDPMTU = 1280
	// maxDatagram is the largest datagram or DTLS record payload read.
	maxDatagram = 2048
)

// DTLSConfig configures ServeDTLS.
type DTLSConfig struct {
	// Certificate is the server certificate chain (leaf first) and key.
	Certificate tls.Certificate
	// ClientCAs are the trust anchors client certificates must chain to:
	// manufacturer CAs, and the domain CA once devices hold LDevIDs.
	// A client without a certificate, or with one that does not chain to
	// a pool certificate, is refused during the handshake.
	ClientCAs *x509.CertPool
	// VerifyPeer, if set, is called with the verified client chain (leaf
	// first, trust anchor last) during the handshake; an error refuses the
	// client (revocation checks).
	VerifyPeer func(chain []*x509.Certificate) error
	// MTU bounds handshake flights and sets the block size (default
	// DefaultDTLSMTU).
	MTU int
	// HandshakeTimeout bounds each handshake (default
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// FlightInterval is the initial handshake retransmission interval
	// (pion's default, 1 s, if zero).
	FlightInterval time.Duration
}

// ServerOption configures a Server. Options validate their arguments;
// NewServer returns the first error, wrapping ErrInvalidOption.
type ServerOption func(*serverConfig) error

type serverConfig struct {
	log              zerolog.Logger
	dtls             *DTLSConfig
	maxPeers         int
	idleTimeout      time.Duration
	maxPayload       int
	registerer       prometheus.Registerer
	critical         []message.OptionID
	exchangeLifetime time.Duration
	dedupEntries     int
	workers          int
	udpQueue         int
	blockSize        int
	now              func() time.Time
	rand             io.Reader
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		log:              zerolog.Nop(),
		maxPeers:         DefaultMaxPeers,
		idleTimeout:      DefaultIdleTimeout,
		maxPayload:       DefaultMaxPayload,
		exchangeLifetime: DefaultExchangeLifetime,
		dedupEntries:     DefaultDedupEntries,
		udpQueue:         DefaultUDPQueue,
		now:              time.Now,
		rand:             rand.Reader,
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithLogger sets the server's logger. The zero Logger discards.
func WithLogger(l zerolog.Logger) ServerOption {
	return func(c *serverConfig) error {
		c.log = l
		return nil
	}
}

// WithDTLS enables ServeDTLS with cfg.
func WithDTLS(cfg DTLSConfig) ServerOption {
	return func(c *serverConfig) error {
		if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil {
			return invalid("DTLSConfig.Certificate needs a certificate and a private key")
		}
		if cfg.ClientCAs == nil {
			return invalid("DTLSConfig.ClientCAs is nil")
		}
		if cfg.MTU == 0 {
			cfg.MTU = DefaultDTLSMTU
		}
		if cfg.MTU < 256 || cfg.MTU > 65535 {
			return invalid("DTLSConfig.MTU %d not in [256,65535]", cfg.MTU)
		}
		if cfg.HandshakeTimeout == 0 {
			cfg.HandshakeTimeout = DefaultHandshakeTimeout
		}
		if cfg.HandshakeTimeout < 0 || cfg.FlightInterval < 0 {
			return invalid("negative DTLS timeout")
		}
		c.dtls = &cfg
		return nil
	}
}

// WithMaxPeers bounds concurrent DTLS associations, including those still
// in the handshake (default DefaultMaxPeers). A ClientHello beyond the
// bound is dropped and counted.
func WithMaxPeers(n int) ServerOption {
	return func(c *serverConfig) error {
		if n < 1 {
			return invalid("max peers %d < 1", n)
		}
		c.maxPeers = n
		return nil
	}
}

// WithIdleTimeout closes a DTLS association that has received nothing for
// d (default DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if d <= 0 {
			return invalid("idle timeout %v <= 0", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithMaxPayload bounds request bodies, whole or reassembled from Block1
// (default DefaultMaxPayload). A larger request is answered 4.13 with
// Size1 set to n.
func WithMaxPayload(n int) ServerOption {
	return func(c *serverConfig) error {
		if n < 1 {
			return invalid("max payload %d < 1", n)
		}
		c.maxPayload = n
		return nil
	}
}

// WithMetrics registers the server's Prometheus collectors with reg.
func WithMetrics(reg prometheus.Registerer) ServerOption {
	return func(c *serverConfig) error {
		if reg == nil {
			return invalid("nil prometheus.Registerer")
		}
		c.registerer = reg
		return nil
	}
}

// WithCriticalOptions declares critical options the handler understands
// beyond RFC 7252/7959/7967 (for example OptionOSCORE). A request with any
// other critical option is answered 4.02 Bad Option before it reaches the
// handler (RFC 7252 §5.4.1).
func WithCriticalOptions(ids ...message.OptionID) ServerOption {
	return func(c *serverConfig) error {
		for _, id := range ids {
			if id%2 == 0 {
				return invalid("option %d is elective, not critical", id)
			}
		}
		c.critical = append(c.critical, ids...)
		return nil
	}
}

// WithDedup sets how long Message IDs are remembered for duplicate
// detection and how many are kept per listener; the oldest are forgotten
// first (defaults DefaultExchangeLifetime, DefaultDedupEntries).
func WithDedup(lifetime time.Duration, maxEntries int) ServerOption {
	return func(c *serverConfig) error {
		if lifetime <= 0 || maxEntries < 1 {
			return invalid("dedup lifetime %v / entries %d", lifetime, maxEntries)
		}
		c.exchangeLifetime, c.dedupEntries = lifetime, maxEntries
		return nil
	}
}

// WithUDPWorkers sets the number of goroutines ServeUDP runs handlers on
// and the queue of datagrams waiting for them (defaults: 8 per CPU,
// DefaultUDPQueue). Datagrams arriving at a full queue are dropped and
// counted.
func WithUDPWorkers(workers, queue int) ServerOption {
	return func(c *serverConfig) error {
		if workers < 1 || queue < 1 {
			return invalid("UDP workers %d / queue %d", workers, queue)
		}
		c.workers, c.udpQueue = workers, queue
		return nil
	}
}

// WithBlockSize caps the block size (RFC 7959) the server uses, a power of
// two from 16 to 1024. By default it is the largest that fits the MTU
// (DTLSConfig.MTU for DTLS, DefaultUDPMTU for plain CoAP).
func WithBlockSize(n int) ServerOption {
	return func(c *serverConfig) error {
		if n < 16 || n > 1024 || bits.OnesCount(uint(n)) != 1 {
			return invalid("block size %d is not a power of two in [16,1024]", n)
		}
		c.blockSize = n
		return nil
	}
}

// WithClock sets the clock used for duplicate expiry and idle accounting.
func WithClock(now func() time.Time) ServerOption {
	return func(c *serverConfig) error {
		if now == nil {
			return invalid("nil clock")
		}
		c.now = now
		return nil
	}
}

// WithRand sets the randomness for session identifiers and initial
// Message IDs (crypto/rand by default).
func WithRand(r io.Reader) ServerOption {
	return func(c *serverConfig) error {
		if r == nil {
			return invalid("nil rand")
		}
		c.rand = r
		return nil
	}
}
