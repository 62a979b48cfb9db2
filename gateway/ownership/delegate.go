package ownership

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// superviseDelegations ends delegations whose time is up and keeps one
// deliverer running per delegation that still has records to deliver:
// every active one, and every ended one whose cursor has not yet passed
// its end position (the "delegate end" record included). A deliverer
// that has delivered everything up to the end stops.
func (m *Manager) superviseDelegations(ctx context.Context) error {
	dels, err := m.cfg.Store.DelegationsUndelivered(ctx)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	pending := make(map[string]store.Delegation, len(dels))
	for _, d := range dels {
		if d.EndedAt.IsZero() && !now.Before(d.Until) {
			dev, err := m.cfg.Store.Device(ctx, d.Device)
			if err != nil {
				return err
			}
			if err := m.endDelegation(ctx, dev, d); err != nil && !errors.Is(err, ErrConflict) {
				return err
			}
			if d, err = m.cfg.Store.Delegation(ctx, d.ID); err != nil {
				return err
			}
		}
		pending[d.ID] = d
	}
	m.delMu.Lock()
	defer m.delMu.Unlock()
	for id, cancel := range m.running {
		if _, ok := pending[id]; !ok {
			cancel()
			delete(m.running, id)
			m.cfg.Log.Info().Str("delegation", id).Msg("delegation delivered to its end")
		}
	}
	if m.runCtx == nil {
		return nil
	}
	for id, d := range pending {
		if _, ok := m.running[id]; !ok {
			if err := m.startDeliverer(m.runCtx, d); err != nil {
				m.cfg.Log.Error().Err(err).Str("delegation", id).Msg("delegate sink")
			}
		}
	}
	return nil
}

// DeliverySinks is the delegate sinks that still hold back outbox pruning:
// those of delegations not yet delivered to their end.
func (m *Manager) DeliverySinks(ctx context.Context) ([]string, error) {
	dels, err := m.cfg.Store.DelegationsUndelivered(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(dels))
	for _, d := range dels {
		out = append(out, d.Sink)
	}
	return out, nil
}

// startDeliverer runs a deliverer for one delegation; the caller holds
// delMu and passes Run's context. It stops when that ends or supervision
// cancels it.
func (m *Manager) startDeliverer(ctx context.Context, d store.Delegation) error {
	var sc upstream.SinkConfig
	if err := json.Unmarshal([]byte(d.Config), &sc); err != nil {
		return err
	}
	log := m.cfg.Log.With().Str("delegation", d.ID).Logger()
	opts := append([]upstream.SinkOption{upstream.WithSinkLogger(log)}, m.cfg.SinkOptions...)
	sink, err := upstream.NewSink(sc, m.cfg.GatewayID, opts...)
	if err != nil {
		return err
	}
	src := &delegateSource{s: m.cfg.Store, dev: d.Device}
	src.end.Store(d.EndPos)
	dl, err := upstream.NewDeliverer(src, []upstream.Sink{sink}, upstream.WithLogger(log))
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	m.running[d.ID] = cancel
	m.delWG.Add(1)
	go func() {
		defer m.delWG.Done()
		defer src.close()
		if err := dl.Run(rctx); err != nil {
			log.Error().Err(err).Msg("delegate deliverer stopped")
			m.delMu.Lock()
			delete(m.running, d.ID)
			m.delMu.Unlock()
		}
	}()
	return nil
}

// stopDeliverers stops every delegate deliverer and waits for them.
func (m *Manager) stopDeliverers() {
	m.delMu.Lock()
	m.runCtx = nil
	for id, cancel := range m.running {
		cancel()
		delete(m.running, id)
	}
	m.delMu.Unlock()
	m.delWG.Wait()
}

// delegateSource is the outbox restricted to one device's records up to a
// delegation's end: what its delegate sink receives.
type delegateSource struct {
	s     *store.Store
	dev   store.DeviceID
	end   atomic.Uint64 // 0 while the delegation is active
	unsub func()
}

func (o *delegateSource) close() {
	if o.unsub != nil {
		o.unsub()
	}
}

func (o *delegateSource) Next(ctx context.Context, sink string, limit int) ([]upstream.Record, error) {
	end := o.end.Load()
	if end == 0 {
		// The delegation may have ended since the deliverer started.
		var err error
		if end, err = o.delegation(ctx, sink); err != nil {
			return nil, err
		}
		o.end.Store(end)
	}
	// Read the head first: whatever Next then finds is at or below it, so
	// when it finds nothing the cursor can skip to it (other devices'
	// records must not hold back pruning).
	head, err := o.s.OutboxHead(ctx)
	if err != nil || head == 0 {
		return nil, err
	}
	bound := head
	if end > 0 && end < bound {
		bound = end
	}
	es, err := o.s.OutboxNextFor(ctx, sink, o.dev, bound, limit)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		cur, err := o.s.OutboxCursor(ctx, sink)
		if err != nil {
			return nil, err
		}
		if cur < bound {
			return nil, o.s.OutboxAck(ctx, sink, bound)
		}
		return nil, nil
	}
	out := make([]upstream.Record, len(es))
	for i, e := range es {
		out[i] = upstream.Record{Pos: e.Pos, Seq: e.Seq, ID: e.ID, Type: e.Type, Device: e.Device, Serial: e.Serial, Time: e.Time, COSE: e.COSE}
	}
	return out, nil
}

// delegation returns the end position of the delegation whose sink this is.
func (o *delegateSource) delegation(ctx context.Context, sink string) (uint64, error) {
	ds, err := o.s.Delegations(ctx, &o.dev, false)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		if d.Sink == sink {
			return d.EndPos, nil
		}
	}
	return 0, nil
}

func (o *delegateSource) Ack(ctx context.Context, sink string, pos uint64) error {
	return o.s.OutboxAck(ctx, sink, pos)
}

func (o *delegateSource) Park(ctx context.Context, sink string, rec upstream.Record, reason string) error {
	return o.s.OutboxPark(ctx, sink, rec.Seq, reason)
}

// Notify is called once, by the deliverer's Run; close ends the
// subscription when the deliverer stops.
func (o *delegateSource) Notify() <-chan struct{} {
	c, unsub := o.s.SubscribeRecords()
	o.unsub = unsub
	return c
}

func (o *delegateSource) Backlog(ctx context.Context, sink string) (int, time.Time, error) {
	return o.s.OutboxBacklogFor(ctx, sink, o.dev, o.end.Load())
}
