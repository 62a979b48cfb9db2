package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// OutboxConfig bounds the upstream outbox.
type OutboxConfig struct {
	// MaxRecords and MaxAge bound what waits for delivery; beyond them the
	// oldest records are dropped from delivery (they stay in the device
	// history), with a warning and tumbler_outbox_dropped_total. 0: no bound.
	MaxRecords int           `yaml:"max_records"`
	MaxAge     time.Duration `yaml:"max_age"`
	// Prune is how often delivered records leave the outbox and the
	// bounds are enforced.
	Prune time.Duration `yaml:"prune"`
}

// OutboxSource is the store's outbox as an upstream.Source.
func OutboxSource(s *store.Store) upstream.Source { return outboxSource{s} }

// outboxSource adapts the store's outbox to upstream.Source.
type outboxSource struct{ s *store.Store }

func (o outboxSource) Next(ctx context.Context, sink string, limit int) ([]upstream.Record, error) {
	es, err := o.s.OutboxNext(ctx, sink, limit)
	if err != nil {
		return nil, err
	}
	out := make([]upstream.Record, len(es))
	for i, e := range es {
		out[i] = upstream.Record{Pos: e.Pos, Seq: e.Seq, ID: e.ID, Type: e.Type, Device: e.Device, Serial: e.Serial, Time: e.Time, COSE: e.COSE}
	}
	return out, nil
}

func (o outboxSource) Ack(ctx context.Context, sink string, pos uint64) error {
	return o.s.OutboxAck(ctx, sink, pos)
}

func (o outboxSource) Park(ctx context.Context, sink string, rec upstream.Record, reason string) error {
	return o.s.OutboxPark(ctx, sink, rec.Seq, reason)
}

func (o outboxSource) Notify() <-chan struct{} { c, _ := o.s.SubscribeRecords(); return c }

func (o outboxSource) Backlog(ctx context.Context, sink string) (int, time.Time, error) {
	return o.s.OutboxBacklog(ctx, sink)
}

// pruner removes delivered records from the outbox and enforces its bounds.
type pruner struct {
	s       *store.Store
	sinks   []string
	extra   func(context.Context) ([]string, error) // delegate sinks still delivering
	cfg     OutboxConfig
	log     zerolog.Logger
	dropped *prometheus.CounterVec
	removed prometheus.Counter
}

func newPruner(s *store.Store, sinks []string, extra func(context.Context) ([]string, error), cfg OutboxConfig, log zerolog.Logger, reg prometheus.Registerer) *pruner {
	p := &pruner{s: s, sinks: sinks, extra: extra, cfg: cfg, log: log,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "outbox", Name: "dropped_total",
			Help: "Records dropped from delivery to a sink by the outbox bounds before that sink delivered them.",
		}, []string{"sink"}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "outbox", Name: "pruned_total",
			Help: "Delivered records removed from the outbox.",
		}),
	}
	if reg != nil {
		reg.MustRegister(p.dropped, p.removed)
	}
	return p
}

func (p *pruner) run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Prune)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := p.prune(ctx); err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("outbox prune")
		}
	}
}

func (p *pruner) prune(ctx context.Context) error {
	sinks := p.sinks
	if p.extra != nil {
		more, err := p.extra(ctx)
		if err != nil {
			return err
		}
		sinks = append(append([]string(nil), sinks...), more...)
	}
	res, err := p.s.PruneOutbox(ctx, sinks, store.Retention{MaxRecords: p.cfg.MaxRecords, MaxAge: p.cfg.MaxAge})
	if err != nil {
		return err
	}
	p.removed.Add(float64(res.Delivered))
	for sink, n := range res.DroppedBySink {
		p.dropped.WithLabelValues(sink).Add(float64(n))
		p.log.Warn().Str("sink", sink).Int("records", n).Int("max_records", p.cfg.MaxRecords).Dur("max_age", p.cfg.MaxAge).
			Msg("outbox bound reached: records dropped from delivery before this sink delivered them")
	}
	return nil
}

// sinkConfig resolves a sink's TLS file paths against the configuration.
func (c Config) sinkConfig(s upstream.SinkConfig) upstream.SinkConfig {
	fix := func(t *upstream.TLSConfig) {
		t.CAFile, t.CertFile, t.KeyFile = c.Path(t.CAFile), c.Path(t.CertFile), c.Path(t.KeyFile)
	}
	if s.MQTT != nil {
		m := *s.MQTT
		fix(&m.TLS)
		s.MQTT = &m
	}
	if s.Webhook != nil {
		w := *s.Webhook
		fix(&w.TLS)
		s.Webhook = &w
	}
	return s
}

func validateOutbox(o OutboxConfig) error {
	switch {
	case o.MaxRecords < 0:
		return fieldErr("outbox.max_records", "%d is negative", o.MaxRecords)
	case o.MaxAge < 0:
		return fieldErr("outbox.max_age", "negative")
	case o.Prune <= 0:
		return fieldErr("outbox.prune", "must be positive")
	}
	return nil
}
