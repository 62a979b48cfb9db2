package oscore

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair derives the C.1 client and server contexts (RFC 8613 Appendix C.1).
func pair(tb testing.TB, clientOpts, serverOpts []ContextOption) (client, server *Context) {
	tb.Helper()
	f := loadVectors(tb)
	client = newVectorContext(tb, f.context(tb, "C.1.1"), clientOpts...)
	server = newVectorContext(tb, f.context(tb, "C.1.2"), serverOpts...)
	return client, server
}

// getRequest is GET coap://localhost/tv1 as in Appendix C.4.
func getRequest() Message {
	return Message{
		Type:      message.Confirmable,
		MessageID: 0x5d1f,
		Token:     []byte{0, 0, 0x39, 0x74},
		Code:      codes.GET,
		Options: message.Options{
			{ID: optURIHost, Value: []byte("localhost")},
			{ID: optURIPath, Value: []byte("tv1")},
		},
	}
}

func helloResponse() Message {
	return Message{
		Type:      message.Acknowledgement,
		MessageID: 0x5d1f,
		Token:     []byte{0, 0, 0x39, 0x74},
		Code:      codes.Content,
		Payload:   []byte("Hello World!"),
	}
}

// memSeqStore is an in-memory SequenceStore. With dropNth > 0 it
// acknowledges the dropNth write since the last reset without keeping it,
// as a volatile write cache would.
type memSeqStore struct {
	mu         sync.Mutex
	v          map[string]uint64
	writes     int
	fail       error
	bootWrites int
	dropNth    int
}

// reset starts counting writes for a new boot.
func (s *memSeqStore) reset(dropNth int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bootWrites, s.dropNth = 0, dropNth
}

func newMemSeqStore() *memSeqStore { return &memSeqStore{v: map[string]uint64{}} }

func (s *memSeqStore) Load(id string) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.v[id]
	return n, ok, nil
}

func (s *memSeqStore) Store(id string, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.writes++
	s.bootWrites++
	if s.bootWrites == s.dropNth {
		return nil
	}
	s.v[id] = n
	return nil
}

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// counterReader is a deterministic io.Reader for Echo values.
type counterReader struct{ n byte }

func (r *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		r.n++
		p[i] = r.n
	}
	return len(p), nil
}

func cloneMessage(m Message) Message {
	c := m
	c.Token = bytes.Clone(m.Token)
	c.Payload = bytes.Clone(m.Payload)
	c.Options = make(message.Options, len(m.Options))
	for i, o := range m.Options {
		c.Options[i] = message.Option{ID: o.ID, Value: bytes.Clone(o.Value)}
	}
	return c
}

func replaceOSCORE(m Message, value []byte) Message {
	c := cloneMessage(m)
	for i := range c.Options {
		if c.Options[i].ID == OptionNumber {
			c.Options[i].Value = value
		}
	}
	return c
}

func windowOf(c *Context) WindowState {
	ws, _ := c.ReplayWindow()
	return ws
}

func optEchoOption(v []byte) message.Option { return message.Option{ID: optEcho, Value: v} }
