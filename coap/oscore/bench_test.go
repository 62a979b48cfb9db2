package oscore

import (
	"context"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
)

// checkinMessage is a check-in sized request: POST /c with a 32-byte CBOR body.
func checkinMessage() Message {
	return Message{
		Type:      message.Confirmable,
		MessageID: 1,
		Token:     []byte{1, 2, 3, 4},
		Code:      codes.POST,
		Options: message.Options{
			{ID: optURIPath, Value: []byte("c")},
			{ID: optContentFmt, Value: []byte{60}},
		},
		Payload: make([]byte, 32),
	}
}

func BenchmarkProtectRequest(b *testing.B) {
	client, _ := pair(b, nil, nil)
	m := checkinMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := client.ProtectRequest(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerCheckIn is the server's per-check-in OSCORE cost:
// UnprotectRequest followed by ProtectResponse of a 2.04 with a small body.
func BenchmarkServerCheckIn(b *testing.B) {
	client, _ := pair(b, nil, nil)
	const batch = 4096
	reqs := make([]Message, batch)
	for i := range reqs {
		m, _, err := client.ProtectRequest(checkinMessage())
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = m
	}
	f := loadVectors(b)
	sv := f.context(b, "C.1.2")
	resp := Message{Type: message.Acknowledgement, MessageID: 1, Token: []byte{1, 2, 3, 4}, Code: codes.Changed, Payload: make([]byte, 8)}
	var server *Context
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%batch == 0 {
			b.StopTimer()
			server = newVectorContext(b, sv) // a fresh window for the replayed batch
			b.StartTimer()
		}
		_, ex, err := server.UnprotectRequest(reqs[i%batch])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := server.ProtectResponse(resp, ex, false); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRoundTrip is client protect, server verify and answer, client
// verify, in memory.
func BenchmarkRoundTrip(b *testing.B) {
	client, server := pair(b, nil, nil)
	m := checkinMessage()
	resp := Message{Type: message.Acknowledgement, MessageID: 1, Token: []byte{1, 2, 3, 4}, Code: codes.Changed, Payload: make([]byte, 8)}
	b.ReportAllocs()
	for b.Loop() {
		req, cex, err := client.ProtectRequest(m)
		if err != nil {
			b.Fatal(err)
		}
		_, sex, err := server.UnprotectRequest(req)
		if err != nil {
			b.Fatal(err)
		}
		out, err := server.ProtectResponse(resp, sex, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := client.UnprotectResponse(out, cex); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlerRoundTrip is the same through Client and Handler in the
// coap request/response model.
func BenchmarkHandlerRoundTrip(b *testing.B) {
	client, server := pair(b, nil, nil)
	inner := coap.HandlerFunc(func(context.Context, *coap.Request) (*coap.Response, error) {
		return coap.Changed(coap.FormatCBOR, make([]byte, 8)), nil
	})
	h, err := NewHandler(newMemContexts(server), inner)
	if err != nil {
		b.Fatal(err)
	}
	d := doerFunc(func(ctx context.Context, r *coap.Request) (*coap.Response, error) { return h.ServeCoAP(ctx, r) })
	cl := Client{Ctx: client}
	r := &coap.Request{Method: codes.POST, Path: "/c", ContentFormat: coap.FormatCBOR, Accept: coap.FormatNone, Payload: make([]byte, 32)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cl.Do(ctx, d, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewContext(b *testing.B) {
	p := loadVectors(b).context(b, "C.1.1").params()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewContext(p); err != nil {
			b.Fatal(err)
		}
	}
}
