package checkin

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tumbler-iot/tumbler/coap/oscore"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

// contexts is the OSCORE ContextStore: security contexts by the device's
// Sender ID ('kid'), built from the store on first use and kept in a
// bounded LRU (about 1.6 KB each). An evicted context is rebuilt from the
// store, including the replay window persisted with every check-in.
type contexts struct {
	store *store.Store
	opts  []oscore.ContextOption
	max   int

	mu    sync.Mutex
	byKID map[string]*list.Element
	lru   list.List // of *entry, most recent first
}

type entry struct {
	kid    string
	device store.DeviceID
	ctx    *oscore.Context

	// The device row, cached so that a check-in reads nothing: refreshed
	// after deviceTTL, and dropped with the entry when the device's state
	// changes through this gateway (Service.Forget).
	mu     sync.Mutex
	dev    store.Device
	loaded time.Time
}

// deviceTTL bounds how stale a cached device row may be.
const deviceTTL = 30 * time.Second

// deviceRow returns the device row, from the cache if fresh.
func (e *entry) deviceRow(ctx context.Context, s *store.Store) (store.Device, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded.IsZero() && time.Since(e.loaded) < deviceTTL {
		return e.dev, nil
	}
	d, err := s.Device(ctx, e.device)
	if err != nil {
		return d, err
	}
	e.dev, e.loaded = d, time.Now()
	return d, nil
}

func newContexts(s *store.Store, max int, opts ...oscore.ContextOption) *contexts {
	return &contexts{store: s, max: max, opts: opts, byKID: make(map[string]*list.Element)}
}

// Lookup implements oscore.ContextStore. Tumbler's contexts have no ID
// Context, so a request carrying a 'kid context' matches none.
func (c *contexts) Lookup(ctx context.Context, kid, kidContext []byte) (*oscore.Context, error) {
	e, err := c.entry(ctx, kid, kidContext)
	if err != nil {
		return nil, err
	}
	return e.ctx, nil
}

func (c *contexts) entry(ctx context.Context, kid, kidContext []byte) (*entry, error) {
	if kidContext != nil {
		return nil, fmt.Errorf("checkin: %w: kid context not used here", oscore.ErrContextNotFound)
	}
	c.mu.Lock()
	if el, ok := c.byKID[string(kid)]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*entry), nil
	}
	c.mu.Unlock()

	sc, err := c.store.OSCOREContextByKID(ctx, kid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("checkin: %w", oscore.ErrContextNotFound)
	}
	if err != nil {
		return nil, err
	}
	opts := append([]oscore.ContextOption{oscore.WithSequenceStore(senderSeqs{c.store, sc.Device})}, c.opts...)
	if sc.HasReplay {
		opts = append(opts, oscore.WithReplayWindow(oscore.WindowState{Highest: sc.ReplayHigh, Bitmap: sc.ReplayBitmap}))
	}
	oc, err := oscore.NewContext(oscore.Params{
		MasterSecret: sc.MasterSecret, MasterSalt: sc.MasterSalt, SenderID: sc.GatewayID, RecipientID: sc.KID,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("checkin: context of %x: %w", sc.Device[:4], err)
	}
	e := &entry{kid: string(kid), device: sc.Device, ctx: oc}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKID[e.kid]; ok {
		// Another request built it meanwhile: there must be one window.
		c.lru.MoveToFront(el)
		return el.Value.(*entry), nil
	}
	c.byKID[e.kid] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*entry)
		delete(c.byKID, old.kid)
	}
	return e, nil
}

// dropDevice forgets the context of a device, whatever its kid.
func (c *contexts) dropDevice(dev store.DeviceID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*entry); e.device == dev {
			c.lru.Remove(el)
			delete(c.byKID, e.kid)
			return
		}
	}
}

// drop forgets a context (replaced or deleted in the store).
func (c *contexts) drop(kid []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKID[string(kid)]; ok {
		c.lru.Remove(el)
		delete(c.byKID, string(kid))
	}
}

// senderSeqs persists the gateway's Sender Sequence Number of one device's
// context (RFC 8613 Appendix B.1.1). The gateway sends responses with a
// Partial IV only for Echo challenges and notifications, so this is rare.
type senderSeqs struct {
	s   *store.Store
	dev store.DeviceID
}

func (q senderSeqs) Load(string) (uint64, bool, error) {
	c, err := q.s.OSCOREContext(context.Background(), q.dev)
	if err != nil {
		return 0, false, err
	}
	return c.SenderSeq, c.HasSenderSeq, nil
}

func (q senderSeqs) Store(_ string, n uint64) error {
	return q.s.Update(context.Background(), func(tx *store.Tx) error { return tx.SetSenderSeq(q.dev, n) })
}
