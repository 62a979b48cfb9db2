package joinproxy

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason says why a datagram was not relayed.
type Reason string

// Drop reasons, the reason label of tumbler_joinproxy_dropped_total.
const (
	// ReasonPledgeLimit: a new stateful circuit for a pledge address that
	// already has the maximum (WithLimits).
	ReasonPledgeLimit Reason = "pledge_limit"
	// ReasonInterfaceLimit: a new stateful circuit on an interface that
	// already has the maximum (WithLimits).
	ReasonInterfaceLimit Reason = "interface_limit"
	// ReasonTooBig: a datagram above the bound (WithMaxDatagram).
	ReasonTooBig Reason = "too_big"
	// ReasonNotRegistrar: a datagram on the registrar-facing side from an
	// address other than the registrar's.
	ReasonNotRegistrar Reason = "not_registrar"
	// ReasonMalformed: not a JPY message (Decode failed).
	ReasonMalformed Reason = "malformed"
	// ReasonBadHeader: a JPY header that does not verify under the join
	// proxy's keys, dropped silently as the draft requires.
	ReasonBadHeader Reason = "bad_header"
	// ReasonUnaddressable: a pledge address the header cannot carry.
	ReasonUnaddressable Reason = "unaddressable"
	// ReasonUpstream: no registrar-facing socket could be opened for a new
	// circuit, or no header key could be made.
	ReasonUpstream Reason = "upstream"
	// ReasonRejected: the first datagram of a new RegistrarConn peer is not
	// a DTLS ClientHello.
	ReasonRejected Reason = "rejected"
	// ReasonPeerLimit: a new RegistrarConn peer beyond WithMaxPeers.
	ReasonPeerLimit Reason = "peer_limit"
	// ReasonWrite: the send failed (the link or socket refused it).
	ReasonWrite Reason = "write"
)

// reasons lists every Reason; a reasonID indexes it.
var reasons = [...]Reason{
	ReasonPledgeLimit, ReasonInterfaceLimit, ReasonTooBig, ReasonNotRegistrar, ReasonMalformed,
	ReasonBadHeader, ReasonUnaddressable, ReasonUpstream, ReasonRejected, ReasonPeerLimit, ReasonWrite,
}

type reasonID int

const (
	dropPledgeLimit reasonID = iota
	dropInterfaceLimit
	dropTooBig
	dropNotRegistrar
	dropMalformed
	dropBadHeader
	dropUnaddressable
	dropUpstream
	dropRejected
	dropPeerLimit
	dropWrite
	numReasons
)

// reasonsOf lists the reasons each mode can report; they are exported as
// zero until they happen.
var reasonsOf = map[mode][]reasonID{
	modeStateful:  {dropPledgeLimit, dropInterfaceLimit, dropTooBig, dropNotRegistrar, dropUpstream, dropWrite},
	modeStateless: {dropTooBig, dropNotRegistrar, dropMalformed, dropBadHeader, dropUnaddressable, dropUpstream, dropWrite},
	modeRegistrar: {dropTooBig, dropMalformed, dropRejected, dropPeerLimit, dropWrite},
}

// Stats is a snapshot of a proxy's or RegistrarConn's counters.
type Stats struct {
	// Up counts datagrams relayed toward the registrar (pledge to
	// registrar; for a RegistrarConn, datagrams returned by ReadFrom).
	Up uint64
	// Down counts datagrams relayed toward pledges (for a RegistrarConn,
	// JPY messages written).
	Down uint64
	// Active is the number of live stateful circuits, or of RegistrarConn
	// peers; 0 for a stateless proxy.
	Active int
	// KeyRotations counts header key replacements (stateless).
	KeyRotations uint64
	// Dropped counts datagrams not relayed, by reason; reasons that cannot
	// happen in the mode are absent.
	Dropped map[Reason]uint64
}

// counters are the source of both Stats and the Prometheus metrics.
type counters struct {
	mode      mode
	up, down  atomic.Uint64
	dropped   [numReasons]atomic.Uint64
	active    func() int
	rotations func() uint64

	descDatagrams, descDropped, descActive, descRotations *prometheus.Desc
}

func newCounters(m mode, reg prometheus.Registerer, active func() int, rotations func() uint64) (*counters, error) {
	labels := prometheus.Labels{"mode": m.label()}
	c := &counters{
		mode:      m,
		active:    active,
		rotations: rotations,
		descDatagrams: prometheus.NewDesc("tumbler_joinproxy_datagrams_total",
			"Datagrams relayed, by direction (up: toward the registrar, down: toward pledges).",
			[]string{"direction"}, labels),
		descDropped: prometheus.NewDesc("tumbler_joinproxy_dropped_total",
			"Datagrams not relayed, by reason.", []string{"reason"}, labels),
		descActive: prometheus.NewDesc("tumbler_joinproxy_active",
			"Live stateful circuits, or peers behind stateless join proxies (registrar side).", nil, labels),
		descRotations: prometheus.NewDesc("tumbler_joinproxy_key_rotations_total",
			"Stateless JPY header key replacements.", nil, labels),
	}
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			return nil, fmt.Errorf("%w: metrics already registered (one %s per registry): %w", ErrInvalidOption, m.label(), err)
		}
		return nil, fmt.Errorf("%w: register metrics: %w", ErrInvalidOption, err)
	}
	return c, nil
}

func (c *counters) drop(r reasonID) { c.dropped[r].Add(1) }

func (c *counters) snapshot() Stats {
	s := Stats{Up: c.up.Load(), Down: c.down.Load(), Dropped: make(map[Reason]uint64)}
	if c.active != nil {
		s.Active = c.active()
	}
	if c.rotations != nil {
		s.KeyRotations = c.rotations()
	}
	for _, r := range reasonsOf[c.mode] {
		s.Dropped[reasons[r]] = c.dropped[r].Load()
	}
	return s
}

// Describe implements prometheus.Collector.
func (c *counters) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.descDatagrams
	ch <- c.descDropped
	if c.active != nil {
		ch <- c.descActive
	}
	if c.rotations != nil {
		ch <- c.descRotations
	}
}

// Collect implements prometheus.Collector.
func (c *counters) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	ch <- prometheus.MustNewConstMetric(c.descDatagrams, prometheus.CounterValue, float64(s.Up), "up")
	ch <- prometheus.MustNewConstMetric(c.descDatagrams, prometheus.CounterValue, float64(s.Down), "down")
	for r, n := range s.Dropped {
		ch <- prometheus.MustNewConstMetric(c.descDropped, prometheus.CounterValue, float64(n), string(r))
	}
	if c.active != nil {
		ch <- prometheus.MustNewConstMetric(c.descActive, prometheus.GaugeValue, float64(s.Active))
	}
	if c.rotations != nil {
		ch <- prometheus.MustNewConstMetric(c.descRotations, prometheus.CounterValue, float64(s.KeyRotations))
	}
}
