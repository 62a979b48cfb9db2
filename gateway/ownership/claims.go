package ownership

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// sideOf maps a claims feed status to the side of it this gateway records.
var sideOf = map[string]string{
	transfer.ClaimPending:   record.RepossessClaimed,
	transfer.ClaimObjected:  record.RepossessObjected,
	transfer.ClaimCompleted: record.RepossessOut,
}

// sideRank orders the sides: a claim only ever moves forward.
var sideRank = map[string]int{record.RepossessClaimed: 1, record.RepossessObjected: 2, record.RepossessOut: 3}

// checkClaims reads the claims feed of one MASA (masaURL), or of every MASA
// this domain's vouchers came from and the configured one (""), and records
// what changed: a new claim ("claimed": the owner may object until the
// notice ends), an objection ("objected"), a repossession carried out
// ("out": credentials revoked, OSCORE context deleted, state repossessed).
func (m *Manager) checkClaims(ctx context.Context, masaURL string) error {
	urls := []string{masaURL}
	if masaURL == "" {
		var err error
		if urls, err = m.cfg.Store.MASAURLs(ctx); err != nil {
			return err
		}
		if m.cfg.MASAURL != "" && !slices.Contains(urls, m.cfg.MASAURL) {
			urls = append(urls, m.cfg.MASAURL)
		}
	}
	if len(urls) == 0 {
		return nil
	}
	query, err := transfer.SignClaimsQuery(m.cfg.Rand, m.cfg.Registrar.Key(), m.cfg.Registrar.Chain(), m.cfg.Now())
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	for _, u := range urls {
		if !m.feeds.due(u, now) {
			continue
		}
		feed, err := m.cfg.MASA.Claims(ctx, u, query)
		m.feeds.result(m.cfg.Log, u, now, err)
		if err != nil {
			continue
		}
		for _, n := range feed {
			if err := m.applyClaim(ctx, u, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// feedPolls remembers, per MASA, how reading its claims feed went, so that
// a MASA without one (the feed is Tumbler's extension; another
// manufacturer's MASA answers 404) is asked again only hourly and logged
// once, and an unreachable one is logged when it fails and when it
// recovers, not at every poll.
type feedPolls struct {
	mu    sync.Mutex
	state map[string]*feedPoll
}

type feedPoll struct {
	failing bool
	next    time.Time // zero: at every poll
}

// maxReason bounds the claim reason kept from a MASA's feed (an order's
// reason, free text).
const maxReason = 256

// feedRetry is how long a MASA without a claims feed is left alone.
const feedRetry = time.Hour

func (f *feedPolls) due(url string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state[url]
	return st == nil || !now.Before(st.next)
}

func (f *feedPolls) result(log zerolog.Logger, url string, now time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == nil {
		f.state = map[string]*feedPoll{}
	}
	st := f.state[url]
	if st == nil {
		st = &feedPoll{}
		f.state[url] = st
	}
	var me *registrar.MASAError
	switch {
	case err == nil:
		if st.failing {
			log.Info().Str("masa", url).Msg("claims feed readable again")
		}
		*st = feedPoll{}
	case errors.As(err, &me) && (me.Status == http.StatusNotFound || me.Status == http.StatusMethodNotAllowed || me.Status == http.StatusNotImplemented):
		if !st.failing {
			log.Info().Str("masa", url).Dur("retry", feedRetry).Msg("this MASA has no claims feed: repossession claims against its devices are not seen here")
		}
		st.failing, st.next = true, now.Add(feedRetry)
	default:
		if !st.failing {
			log.Warn().Err(err).Str("masa", url).Msg("claims feed unreadable; retrying at every poll")
		}
		st.failing = true
	}
}

func (m *Manager) applyClaim(ctx context.Context, masaURL string, n transfer.ClaimNotice) error {
	log := m.cfg.Log.With().Str("serial", n.Serial).Str("masa", masaURL).Logger()
	side, ok := sideOf[n.Status]
	order, err1 := hex.DecodeString(n.OrderHash)
	owner, err2 := hex.DecodeString(n.NewOwner)
	if !ok || err1 != nil || err2 != nil || len(order) != 32 || len(owner) != 32 || n.NoticeUntil.IsZero() {
		log.Warn().Str("status", n.Status).Msg("claims feed: malformed entry ignored")
		return nil
	}
	reason := n.Reason
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "")
	}
	c := store.Claim{Reason: reason, NoticeUntil: n.NoticeUntil, Status: side, MASAURL: masaURL}
	copy(c.OrderHash[:], order)
	copy(c.NewOwner[:], owner)
	devs, err := m.cfg.Store.Devices(ctx, store.DeviceFilter{Serial: n.Serial})
	if err != nil {
		return err
	}
	for _, dev := range devs {
		// The serial is the manufacturer's; the device is ours from this
		// MASA only if its voucher came from there.
		if x, err := m.cfg.Store.LatestVoucher(ctx, dev.ID); err != nil || x.MASAURL != masaURL {
			continue
		}
		known, err := m.cfg.Store.Claims(ctx, &dev.ID)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(known, func(k store.Claim) bool { return k.OrderHash == c.OrderHash }); i >= 0 && sideRank[known[i].Status] >= sideRank[side] {
			continue
		}
		c.Device = dev.ID
		out := side == record.RepossessOut && enrolled(dev.State)
		var serials [][]byte
		if out {
			if serials, err = m.revocable(ctx, dev.ID); err != nil {
				return err
			}
		}
		_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial},
			&record.RepossessBody{OrderHash: c.OrderHash, NoticeUntil: c.NoticeUntil, Side: side, NewOwner: c.NewOwner},
			func(tx *store.Tx) error {
				if err := tx.PutClaim(c); err != nil {
					return err
				}
				if out {
					return retire(tx, dev.ID, store.StateRepossessed, "repossessed")
				}
				return nil
			})
		if err != nil {
			return fmt.Errorf("claim on %s: %w", dev.Serial, err)
		}
		id := hex.EncodeToString(dev.ID[:])
		switch side {
		case record.RepossessClaimed:
			log.Warn().Str("device", id).Str("reason", n.Reason).Time("notice_until", n.NoticeUntil).
				Msg("repossession claimed against this device; object with `tumbler device object` before the notice ends")
		case record.RepossessObjected:
			log.Info().Str("device", id).Msg("repossession claim objected")
		case record.RepossessOut:
			if out {
				m.revoke(serials)
				m.forget(ctx, dev.ID)
			}
			log.Warn().Str("device", id).Msg("device repossessed by another domain: credentials revoked")
		}
	}
	return nil
}
