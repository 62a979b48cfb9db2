package msglayer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakePeer struct {
	key  string
	mu   sync.Mutex
	sent [][]byte
}

func (p *fakePeer) Key() string { return p.key }

func (p *fakePeer) Send(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, bytes.Clone(b))
	return nil
}

// take returns and clears what was sent, decoded.
func (p *fakePeer) take(t *testing.T) []message.Message {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []message.Message
	for _, b := range p.sent {
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
			t.Fatalf("server sent undecodable datagram % x: %v", b, err)
		}
		m.Payload = bytes.Clone(m.Payload)
		out = append(out, m)
	}
	p.sent = nil
	return out
}

// one asserts that exactly one datagram was sent and returns it.
func (p *fakePeer) one(t *testing.T) message.Message {
	t.Helper()
	got := p.take(t)
	if len(got) != 1 {
		t.Fatalf("sent %d datagrams, want 1", len(got))
	}
	return got[0]
}

// encode builds a datagram.
func encode(t *testing.T, typ message.Type, code codes.Code, mid uint16, token string, opts message.Options, payload []byte) []byte {
	t.Helper()
	m := message.Message{Type: typ, Code: code, MessageID: int32(mid), Token: []byte(token), Options: opts, Payload: payload}
	size, err := coder.DefaultCoder.Size(m)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func pathOpts(t *testing.T, path string, extra ...message.Option) message.Options {
	t.Helper()
	buf := make([]byte, 256)
	opts, _, err := message.Options{}.SetPath(buf, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range extra {
		opts = opts.Add(o)
	}
	return opts
}

func uintOpt(id message.OptionID, v uint32) message.Option {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, v)
	return message.Option{ID: id, Value: buf[:n]}
}

// echoHandler answers 2.05 with "path:body" and counts calls.
type echoHandler struct {
	calls atomic.Int32
	body  []byte // if set, the response body
}

func (e *echoHandler) handle(_ context.Context, _ *fakePeer, req, resp *pool.Message) {
	e.calls.Add(1)
	path, _ := req.Path()
	body, _ := req.ReadBody()
	resp.SetCode(codes.Content)
	resp.SetContentFormat(message.TextPlain)
	if e.body != nil {
		resp.SetBody(bytes.NewReader(e.body))
		return
	}
	resp.SetBody(bytes.NewReader([]byte(path + ":" + string(body))))
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newLayer(cfg Config, h Handler[*fakePeer]) *Layer[*fakePeer] {
	return New(cfg, h)
}

func TestRequestResponse(t *testing.T) {
	tests := []struct {
		name     string
		typ      message.Type
		wantType message.Type
		sameMID  bool
	}{
		{"confirmable is piggybacked", message.Confirmable, message.Acknowledgement, true},
		{"non-confirmable gets NON", message.NonConfirmable, message.NonConfirmable, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &echoHandler{}
			l := newLayer(Config{InitialMID: 1000}, h.handle)
			p := &fakePeer{key: "a"}
			res := l.Receive(context.Background(), p, encode(t, tc.typ, codes.POST, 7, "tok", pathOpts(t, "/x/y"), []byte("hi")))
			if res.Outcome != Responded || res.Code != codes.Content || res.Err != nil {
				t.Fatalf("result = %+v", res)
			}
			m := p.one(t)
			if m.Type != tc.wantType || m.Code != codes.Content || string(m.Token) != "tok" {
				t.Fatalf("response type %v code %v token %q", m.Type, m.Code, m.Token)
			}
			if (m.MessageID == 7) != tc.sameMID {
				t.Fatalf("response MID %d (request 7)", m.MessageID)
			}
			if string(m.Payload) != "/x/y:hi" {
				t.Fatalf("payload %q", m.Payload)
			}
		})
	}
}

func TestDuplicates(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	h := &echoHandler{}
	l := newLayer(Config{ExchangeLifetime: time.Minute, DedupEntries: 2, Now: clk.Now}, h.handle)
	p := &fakePeer{key: "a"}
	ctx := context.Background()
	con := func(mid uint16) []byte {
		return encode(t, message.Confirmable, codes.GET, mid, "t", pathOpts(t, "/d"), nil)
	}

	t.Run("CON duplicate answered from cache", func(t *testing.T) {
		first := l.Receive(ctx, p, con(1))
		want := p.one(t)
		dup := l.Receive(ctx, p, con(1))
		if first.Outcome != Responded || dup.Outcome != Duplicate {
			t.Fatalf("outcomes %v, %v", first.Outcome, dup.Outcome)
		}
		got := p.one(t)
		if got.MessageID != want.MessageID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("duplicate answered %+v, first %+v", got, want)
		}
		if h.calls.Load() != 1 {
			t.Fatalf("handler called %d times", h.calls.Load())
		}
	})
	t.Run("same MID from another peer is new", func(t *testing.T) {
		other := &fakePeer{key: "b"}
		if res := l.Receive(ctx, other, con(1)); res.Outcome != Responded {
			t.Fatalf("outcome %v", res.Outcome)
		}
		other.one(t)
	})
	t.Run("reused MID with another token is a new request", func(t *testing.T) {
		calls := h.calls.Load()
		l.Receive(ctx, p, encode(t, message.Confirmable, codes.GET, 1, "other", pathOpts(t, "/d"), nil))
		if m := p.one(t); string(m.Token) != "other" {
			t.Fatalf("answered with token %q", m.Token)
		}
		if h.calls.Load() != calls+1 {
			t.Fatal("reused MID was treated as a duplicate")
		}
	})
	t.Run("NON duplicate ignored", func(t *testing.T) {
		non := encode(t, message.NonConfirmable, codes.GET, 50, "n", pathOpts(t, "/d"), nil)
		l.Receive(ctx, p, non)
		p.one(t)
		if res := l.Receive(ctx, p, non); res.Outcome != Duplicate {
			t.Fatalf("outcome %v", res.Outcome)
		}
		if got := p.take(t); len(got) != 0 {
			t.Fatalf("duplicate NON answered: %v", got)
		}
	})
	t.Run("expires after the exchange lifetime", func(t *testing.T) {
		calls := h.calls.Load()
		clk.advance(time.Minute + time.Second)
		l.Expire(clk.Now())
		if l.Remembered() != 0 {
			t.Fatalf("remembered %d after expiry", l.Remembered())
		}
		l.Receive(ctx, p, con(1))
		p.one(t)
		if h.calls.Load() != calls+1 {
			t.Fatal("expired MID was not processed again")
		}
	})
	t.Run("bounded: oldest evicted", func(t *testing.T) {
		clk.advance(2 * time.Minute)
		calls := h.calls.Load()
		for _, mid := range []uint16{10, 11, 12, 10} {
			l.Receive(ctx, p, con(mid))
		}
		p.take(t)
		if l.Remembered() != 2 {
			t.Fatalf("remembered %d, bound 2", l.Remembered())
		}
		if got := h.calls.Load() - calls; got != 4 {
			t.Fatalf("handler calls %d, want 4 (MID 10 was evicted)", got)
		}
	})
}

func TestDuplicateWhileInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var calls atomic.Int32
	l := newLayer(Config{}, func(_ context.Context, _ *fakePeer, _, resp *pool.Message) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		resp.SetCode(codes.Changed)
	})
	p := &fakePeer{key: "a"}
	req := encode(t, message.Confirmable, codes.POST, 9, "t", pathOpts(t, "/slow"), nil)
	done := make(chan Result, 1)
	go func() { done <- l.Receive(context.Background(), p, req) }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not entered")
	}
	if res := l.Receive(context.Background(), p, req); res.Outcome != Duplicate {
		t.Fatalf("in-flight duplicate outcome %v", res.Outcome)
	}
	close(release)
	select {
	case res := <-done:
		if res.Outcome != Responded {
			t.Fatalf("first copy outcome %v", res.Outcome)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first copy not answered")
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times", calls.Load())
	}
	if m := p.one(t); m.Code != codes.Changed || m.MessageID != 9 {
		t.Fatalf("response %v mid %d", m.Code, m.MessageID)
	}
}

func TestMessageLayerRules(t *testing.T) {
	rst := func(mid int32) func(t *testing.T, sent []message.Message) {
		return func(t *testing.T, sent []message.Message) {
			t.Helper()
			if len(sent) != 1 || sent[0].Type != message.Reset || sent[0].Code != codes.Empty || sent[0].MessageID != mid {
				t.Fatalf("want RST mid %d, sent %+v", mid, sent)
			}
		}
	}
	nothing := func(t *testing.T, sent []message.Message) {
		t.Helper()
		if len(sent) != 0 {
			t.Fatalf("want nothing sent, sent %+v", sent)
		}
	}
	answer := func(code codes.Code, typ message.Type, payload string) func(t *testing.T, sent []message.Message) {
		return func(t *testing.T, sent []message.Message) {
			t.Helper()
			if len(sent) != 1 || sent[0].Code != code || sent[0].Type != typ {
				t.Fatalf("want %v %v, sent %+v", typ, code, sent)
			}
			if payload != "" && string(sent[0].Payload) != payload {
				t.Fatalf("payload %q, want %q", sent[0].Payload, payload)
			}
			if _, err := sent[0].Options.ContentFormat(); code >= codes.BadRequest && err == nil {
				t.Fatal("diagnostic payload carries a Content-Format")
			}
		}
	}
	oscore := message.Option{ID: 9, Value: []byte{0x09, 0x01}}
	tests := []struct {
		name     string
		cfg      Config
		datagram func(t *testing.T) []byte
		outcome  Outcome
		check    func(t *testing.T, sent []message.Message)
		handled  bool
	}{
		{
			name:     "ping",
			datagram: func(t *testing.T) []byte { return encode(t, message.Confirmable, codes.Empty, 77, "", nil, nil) },
			outcome:  Reset, check: rst(77),
		},
		{
			name:     "empty NON",
			datagram: func(t *testing.T) []byte { return encode(t, message.NonConfirmable, codes.Empty, 1, "", nil, nil) },
			outcome:  Ignored, check: nothing,
		},
		{
			name:     "ACK",
			datagram: func(t *testing.T) []byte { return encode(t, message.Acknowledgement, codes.Empty, 1, "", nil, nil) },
			outcome:  Ignored, check: nothing,
		},
		{
			name:     "RST",
			datagram: func(t *testing.T) []byte { return encode(t, message.Reset, codes.Empty, 1, "", nil, nil) },
			outcome:  Ignored, check: nothing,
		},
		{
			name:     "CON response code",
			datagram: func(t *testing.T) []byte { return encode(t, message.Confirmable, codes.Content, 5, "x", nil, nil) },
			outcome:  Reset, check: rst(5),
		},
		{
			name:     "NON response code",
			datagram: func(t *testing.T) []byte { return encode(t, message.NonConfirmable, codes.Content, 5, "x", nil, nil) },
			outcome:  Ignored, check: nothing,
		},
		{
			name:     "garbage",
			datagram: func(*testing.T) []byte { return []byte("\x00garbage") },
			outcome:  Malformed, check: nothing,
		},
		{
			name:     "truncated",
			datagram: func(*testing.T) []byte { return []byte{0x40, 0x01} },
			outcome:  Malformed, check: nothing,
		},
		{
			name:     "CON with token length 9",
			datagram: func(*testing.T) []byte { return []byte{0x49, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9} },
			outcome:  Malformed, check: rst(0x1234),
		},
		{
			name:     "NON with token length 9",
			datagram: func(*testing.T) []byte { return []byte{0x59, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9} },
			outcome:  Malformed, check: nothing,
		},
		{
			name: "unknown critical option",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.POST, 3, "c", pathOpts(t, "/x", oscore), nil)
			},
			outcome: Responded, check: answer(codes.BadOption, message.Acknowledgement, "unknown critical option 9"),
		},
		{
			name: "unknown critical option on NON",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.NonConfirmable, codes.POST, 3, "c", pathOpts(t, "/x", oscore), nil)
			},
			outcome: Responded, check: nothing,
		},
		{
			name: "configured critical option",
			cfg:  Config{Critical: []message.OptionID{9}},
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.POST, 3, "c", pathOpts(t, "/x", oscore), nil)
			},
			outcome: Responded, check: answer(codes.Content, message.Acknowledgement, "/x:"), handled: true,
		},
		{
			name: "Q-Block is not supported",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.GET, 3, "c", pathOpts(t, "/x", uintOpt(message.QBlock2, 0)), nil)
			},
			outcome: Responded, check: answer(codes.BadOption, message.Acknowledgement, "unknown critical option 31"),
		},
		{
			name: "known critical option with illegal length",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.GET, 3, "c", pathOpts(t, "/x", message.Option{ID: message.URIHost}), nil)
			},
			outcome: Responded, check: answer(codes.BadOption, message.Acknowledgement, "unknown critical option 3"),
		},
		{
			name: "proxy request",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.GET, 3, "c", message.Options{{ID: message.ProxyURI, Value: []byte("coap://x/y")}}, nil)
			},
			outcome: Responded, check: answer(codes.ProxyingNotSupported, message.Acknowledgement, "not a proxy"),
		},
		{
			name: "No-Response suppresses NON answer",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.NonConfirmable, codes.POST, 3, "c", pathOpts(t, "/x", uintOpt(message.NoResponse, 2)), nil)
			},
			outcome: Responded, check: nothing, handled: true,
		},
		{
			name: "No-Response on CON gets empty ACK",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.POST, 3, "c", pathOpts(t, "/x", uintOpt(message.NoResponse, 2)), nil)
			},
			outcome: Responded, check: answer(codes.Empty, message.Acknowledgement, ""), handled: true,
		},
		{
			name: "No-Response for other classes does not suppress",
			datagram: func(t *testing.T) []byte {
				return encode(t, message.NonConfirmable, codes.POST, 3, "c", pathOpts(t, "/x", uintOpt(message.NoResponse, 8)), nil)
			},
			outcome: Responded, check: answer(codes.Content, message.NonConfirmable, "/x:"), handled: true,
		},
		{
			name: "body above MaxBody",
			cfg:  Config{MaxBody: 8},
			datagram: func(t *testing.T) []byte {
				return encode(t, message.Confirmable, codes.POST, 3, "c", pathOpts(t, "/x"), []byte("123456789"))
			},
			outcome: Responded, check: answer(codes.RequestEntityTooLarge, message.Acknowledgement, "request too large"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &echoHandler{}
			l := newLayer(tc.cfg, h.handle)
			p := &fakePeer{key: "a"}
			res := l.Receive(context.Background(), p, tc.datagram(t))
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome %v, want %v", res.Outcome, tc.outcome)
			}
			tc.check(t, p.take(t))
			if handled := h.calls.Load() > 0; handled != tc.handled {
				t.Fatalf("handler called = %v, want %v", handled, tc.handled)
			}
		})
	}
}

func TestBlockwiseResponse(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes
	h := &echoHandler{body: body}
	l := newLayer(Config{BlockSZX: blockwise.SZX512}, h.handle)
	ctx := context.Background()

	// Two peers use the same token at the same time; each must get its own
	// transfer (here both the same body, but separately tracked).
	peers := []*fakePeer{{key: "a"}, {key: "b"}}
	got := make([][]byte, len(peers))
	for num := uint32(0); ; num++ {
		more := false
		for i, p := range peers {
			opts := pathOpts(t, "/big")
			if num > 0 {
				v, _ := blockwise.EncodeBlockOption(blockwise.SZX512, int64(num), false)
				opts = opts.Add(uintOpt(message.Block2, v))
			}
			l.Receive(ctx, p, encode(t, message.Confirmable, codes.GET, uint16(100+num), "tk", opts, nil))
			m := p.one(t)
			if m.Code != codes.Content || string(m.Token) != "tk" {
				t.Fatalf("block %d: code %v token %q", num, m.Code, m.Token)
			}
			v, err := m.Options.GetUint32(message.Block2)
			if err != nil {
				t.Fatalf("block %d without Block2", num)
			}
			szx, n, m2, _ := blockwise.DecodeBlockOption(v)
			if szx != blockwise.SZX512 || n != int64(num) {
				t.Fatalf("block option szx %v num %d", szx, n)
			}
			if size, err := m.Options.GetUint32(message.Size2); num == 0 && (err != nil || size != uint32(len(body))) {
				t.Fatalf("Size2 = %d, %v", size, err)
			}
			got[i] = append(got[i], m.Payload...)
			more = m2
		}
		if !more {
			break
		}
	}
	for i := range peers {
		if !bytes.Equal(got[i], body) {
			t.Fatalf("peer %d reassembled %d bytes, want %d", i, len(got[i]), len(body))
		}
	}
	if h.calls.Load() != 2 {
		t.Fatalf("handler called %d times, want once per peer", h.calls.Load())
	}
}

func TestBlockwiseRequest(t *testing.T) {
	body := bytes.Repeat([]byte("xyz"), 700) // 2100 bytes
	var gotBody []byte
	l := newLayer(Config{}, func(_ context.Context, _ *fakePeer, req, resp *pool.Message) {
		gotBody, _ = io.ReadAll(req.Body())
		resp.SetCode(codes.Changed)
	})
	p := &fakePeer{key: "a"}
	const size = 512
	for num := 0; num*size < len(body); num++ {
		end := min((num+1)*size, len(body))
		more := end < len(body)
		v, _ := blockwise.EncodeBlockOption(blockwise.SZX512, int64(num), more)
		opts := pathOpts(t, "/up", uintOpt(message.Block1, v))
		if num == 0 {
			opts = opts.Add(uintOpt(message.Size1, uint32(len(body))))
		}
		l.Receive(context.Background(), p, encode(t, message.Confirmable, codes.POST, uint16(200+num), "up", opts, body[num*size:end]))
		m := p.one(t)
		want := codes.Continue
		if !more {
			want = codes.Changed
		}
		if m.Code != want {
			t.Fatalf("block %d answered %v, want %v (%s)", num, m.Code, want, m.Payload)
		}
	}
	if !bytes.Equal(gotBody, body) {
		t.Fatalf("handler got %d bytes, want %d", len(gotBody), len(body))
	}
}

func TestBlockwiseRequestTooLarge(t *testing.T) {
	h := &echoHandler{}
	l := newLayer(Config{MaxBody: 1000}, h.handle)
	p := &fakePeer{key: "a"}
	v, _ := blockwise.EncodeBlockOption(blockwise.SZX512, 0, true)
	opts := pathOpts(t, "/up", uintOpt(message.Block1, v), uintOpt(message.Size1, 5000))
	l.Receive(context.Background(), p, encode(t, message.Confirmable, codes.POST, 1, "u", opts, make([]byte, 512)))
	m := p.one(t)
	if m.Code != codes.RequestEntityTooLarge {
		t.Fatalf("code %v, want 4.13", m.Code)
	}
	if h.calls.Load() != 0 {
		t.Fatal("handler called for an oversize transfer")
	}
}

func TestOutcomeString(t *testing.T) {
	for o := Responded; o <= Malformed; o++ {
		if s := o.String(); s == "" || s == fmt.Sprintf("outcome(%d)", o) {
			t.Fatalf("outcome %d has no name", o)
		}
	}
	if Outcome(99).String() != "outcome(99)" {
		t.Fatal("unknown outcome name")
	}
}

func BenchmarkReceive(b *testing.B) {
	l := New(Config{}, func(_ context.Context, _ *fakePeer, _, resp *pool.Message) {
		resp.SetCode(codes.Changed)
	})
	p := &fakePeer{key: "bench"}
	m := message.Message{Type: message.Confirmable, Code: codes.POST, Token: []byte("12345678")}
	buf := make([]byte, 256)
	opts, _, _ := message.Options{}.SetPath(buf, "/c")
	m.Options = opts
	m.Payload = make([]byte, 64)
	dg := make([]byte, 512)
	ctx := context.Background()
	b.ReportAllocs()
	var mid uint16
	for b.Loop() {
		mid++
		m.MessageID = int32(mid)
		n, _ := coder.DefaultCoder.Encode(m, dg)
		l.Receive(ctx, p, dg[:n])
		p.sent = p.sent[:0]
	}
}
