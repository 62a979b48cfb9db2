package msglayer

import (
	"bytes"
	"context"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// FuzzReceive feeds arbitrary datagrams to the message layer: it must not
// panic, must send at most one datagram per received one, and whatever it
// sends must be a well-formed CoAP message that is never a request.
func FuzzReceive(f *testing.F) {
	enc := func(typ message.Type, code codes.Code, token string, opts message.Options, payload []byte) []byte {
		m := message.Message{Type: typ, Code: code, MessageID: 1, Token: []byte(token), Options: opts, Payload: payload}
		size, _ := coder.DefaultCoder.Size(m)
		b := make([]byte, size)
		_, _ = coder.DefaultCoder.Encode(m, b)
		return b
	}
	path, _, _ := message.Options{}.SetPath(make([]byte, 64), "/a/b")
	block := func(id message.OptionID, num int64, more bool) message.Option {
		v, _ := blockwise.EncodeBlockOption(blockwise.SZX64, num, more)
		buf := make([]byte, 4)
		n, _ := message.EncodeUint32(buf, v)
		return message.Option{ID: id, Value: buf[:n]}
	}
	f.Add(enc(message.Confirmable, codes.GET, "t", path, nil))
	f.Add(enc(message.NonConfirmable, codes.POST, "tok", path, []byte("payload")))
	f.Add(enc(message.Confirmable, codes.POST, "b1", path.Add(block(message.Block1, 0, true)), make([]byte, 64)))
	f.Add(enc(message.Confirmable, codes.POST, "b1", path.Add(block(message.Block1, 1, false)), []byte("x")))
	f.Add(enc(message.Confirmable, codes.GET, "b2", path.Add(block(message.Block2, 3, false)), nil))
	f.Add(enc(message.Confirmable, codes.Empty, "", nil, nil))
	f.Add([]byte{0x40})
	f.Add([]byte{0x4f, 0x01, 0, 0})

	body := bytes.Repeat([]byte("r"), 300)
	l := New(Config{BlockSZX: blockwise.SZX64, MaxBody: 512, DedupEntries: 64, BlockwiseEntries: 16},
		func(_ context.Context, _ *fakePeer, req, resp *pool.Message) {
			_, _ = req.ReadBody()
			resp.SetCode(codes.Content)
			resp.SetBody(bytes.NewReader(body))
		})
	f.Fuzz(func(t *testing.T, datagram []byte) {
		p := &fakePeer{key: "fuzz"}
		l.Receive(context.Background(), p, datagram)
		if len(p.sent) > 1 {
			t.Fatalf("sent %d datagrams for one", len(p.sent))
		}
		for _, b := range p.sent {
			m := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
				t.Fatalf("sent malformed datagram % x: %v", b, err)
			}
			if m.Code != codes.Empty && m.Code>>5 == 0 {
				t.Fatalf("sent a request code %v", m.Code)
			}
		}
	})
}
