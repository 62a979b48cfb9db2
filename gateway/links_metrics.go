package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/thread/commissioner"
	"github.com/tumbler-iot/tumbler/thread/relay"
)

// Link metrics. The join proxy and the registrar's JPY endpoint register
// their own (tumbler_joinproxy_*{mode}); the Thread relay and the BLE
// central keep Stats, exported here as they are read, so a scrape costs
// one snapshot and nothing is counted twice. Directions follow the join
// proxy's: up is toward the registrar, down toward pledges.

// relayCollector exports a Thread relay's Stats and its commissioner's
// state.
type relayCollector struct {
	rl   *relay.Conn
	comm *commissioner.Commissioner

	datagrams, dropped, joiners, expired, active *prometheus.Desc
}

func newRelayCollector(rl *relay.Conn, comm *commissioner.Commissioner) *relayCollector {
	return &relayCollector{
		rl: rl, comm: comm,
		datagrams: prometheus.NewDesc("tumbler_thread_relay_datagrams_total",
			"Joiner datagrams relayed (up: RLY_RX from Joiner Routers, down: RLY_TX to them).", []string{"direction"}, nil),
		dropped: prometheus.NewDesc("tumbler_thread_relay_dropped_total",
			"Joiner datagrams not relayed, by reason.", []string{"reason"}, nil),
		joiners: prometheus.NewDesc("tumbler_thread_relay_joiners",
			"Joiners the relay tracks now.", nil, nil),
		expired: prometheus.NewDesc("tumbler_thread_relay_expired_total",
			"Joiners forgotten after the idle timeout.", nil, nil),
		active: prometheus.NewDesc("tumbler_thread_commissioner_active",
			"1 while the gateway is the Thread network's active commissioner.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.datagrams, c.dropped, c.joiners, c.expired, c.active} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.rl.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.datagrams, s.Received, "up")
	counter(c.datagrams, s.Sent, "down")
	for _, r := range []struct {
		reason string
		n      uint64
	}{
		{"malformed", s.Malformed}, {"joiner_port", s.DroppedPort}, {"joiner_limit", s.DroppedJoinerLimit},
		{"queue_full", s.DroppedQueueFull}, {"too_large", s.DroppedTooLarge}, {"unknown_joiner", s.UnknownJoiner},
		{"send", s.SendErrors},
	} {
		counter(c.dropped, r.n, r.reason)
	}
	counter(c.expired, s.Expired)
	ch <- prometheus.MustNewConstMetric(c.joiners, prometheus.GaugeValue, float64(s.Joiners))
	active := 0.0
	if st, _ := c.comm.State(); st == commissioner.Active {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, active)
}

// centralCollector exports a BLE Central's Stats.
type centralCollector struct {
	c *ble.Central

	links, sessions, ended, datagrams, dropped *prometheus.Desc
}

func newCentralCollector(c *ble.Central) *centralCollector {
	return &centralCollector{
		c: c,
		links: prometheus.NewDesc("tumbler_ble_links_total",
			"BLE links offered to the central, by outcome (accepted, refused over the limit, handshake_failed).", []string{"result"}, nil),
		sessions: prometheus.NewDesc("tumbler_ble_sessions",
			"BTP sessions open now.", nil, nil),
		ended: prometheus.NewDesc("tumbler_ble_sessions_ended_total",
			"BTP sessions ended, by reason.", []string{"reason"}, nil),
		datagrams: prometheus.NewDesc("tumbler_ble_datagrams_total",
			"DTLS datagrams carried (up: from pledges, down: to pledges).", []string{"direction"}, nil),
		dropped: prometheus.NewDesc("tumbler_ble_dropped_total",
			"Datagrams dropped, by reason (receive_queue, send_queue, no_route).", []string{"reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *centralCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.links, c.sessions, c.ended, c.datagrams, c.dropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *centralCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.c.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.links, s.LinksAccepted, "accepted")
	counter(c.links, s.LinksRefused, "refused")
	counter(c.links, s.HandshakesFailed, "handshake_failed")
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Sessions))
	for reason, n := range s.Ended {
		counter(c.ended, n, reason)
	}
	counter(c.datagrams, s.DatagramsIn, "up")
	counter(c.datagrams, s.DatagramsOut, "down")
	counter(c.dropped, s.DroppedInbound, "receive_queue")
	counter(c.dropped, s.DroppedQueueFull, "send_queue")
	counter(c.dropped, s.DroppedNoRoute, "no_route")
}
