package checkin

import (
	"context"
	"errors"
	"time"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// RunOverdue records missed check-ins until ctx ends: every cfg.Poll it
// emits one "overdue" record per missed window of each device (a gateway
// that was down for three windows catches up with three records).
func (s *Service) RunOverdue(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := s.ScanOverdue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("overdue scan")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ScanOverdue records every window missed as of now and returns how many
// overdue records it committed.
func (s *Service) ScanOverdue(ctx context.Context) (int, error) {
	n := 0
	for {
		devs, err := s.store.Overdue(ctx, s.now(), 500)
		if err != nil || len(devs) == 0 {
			return n, err
		}
		progress := 0
		for _, d := range devs {
			ok, err := s.recordOverdue(ctx, d)
			if err != nil {
				return n, err
			}
			if ok {
				n++
				progress++
			}
		}
		if progress == 0 {
			return n, nil
		}
	}
}

func (s *Service) recordOverdue(ctx context.Context, d store.Device) (bool, error) {
	cl := s.cfg.class(d.Class)
	missed := d.Missed + 1
	body := &record.OverdueBody{LastCheckIn: d.LastCheckin, Due: d.OverdueAt.Add(-cl.Grace), Missed: uint64(missed)}
	_, err := s.journal.Append(ctx, journal.Device{ID: d.ID, Serial: d.Serial}, body, func(tx *store.Tx) error {
		applied, err := tx.MarkOverdue(d.ID, d.OverdueAt, missed, d.OverdueAt.Add(cl.Interval))
		if err != nil {
			return err
		}
		if !applied {
			return errStale
		}
		return nil
	})
	if errors.Is(err, errStale) {
		return false, nil // a check-in committed meanwhile
	}
	if err != nil {
		return false, err
	}
	s.m.overdue.Inc()
	s.log.Warn().Str("serial", d.Serial).Int("missed", missed).Time("due", body.Due).Msg("check-in overdue")
	return true, nil
}
