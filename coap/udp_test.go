package coap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func TestUDPRoundTrip(t *testing.T) {
	for _, tc := range links(t) {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			s := start(t, tc.link, serveUDP, rec)
			c := dialUDP(t, tc.link, s)
			ctx := testContext(t)

			resp, err := c.Get(ctx, "/hello", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, []byte("hello"))
			up := bytes.Repeat([]byte("0123456789"), 400)
			resp, err = c.Post(ctx, "/echo", coap.FormatCBOR, up, coap.FormatNone)
			wantResponse(t, resp, err, codes.Changed, up)
			resp, err = c.Get(ctx, "/big", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, bigBody)
			if resp.ContentFormat != coap.FormatCBOR {
				t.Fatalf("Content-Format %d", resp.ContentFormat)
			}
			resp, err = c.Post(ctx, "/forbidden", coap.FormatNone, nil, coap.FormatNone)
			wantResponse(t, resp, err, codes.Forbidden, []byte("serial mismatch"))

			for _, r := range rec.requests() {
				if r.Peer.Secure() || r.Peer.Session != "" || r.Peer.Addr == nil {
					t.Fatalf("plain CoAP peer %+v", r.Peer)
				}
			}
			if got := s.metric(t, "tumbler_coap_responses_total", "transport", "udp", "code", "2.05"); got < 2 {
				t.Fatalf("2.05 responses = %v", got)
			}
		})
	}
}

// rawExchange sends datagrams from pc to s and reads one reply per datagram
// that expects one.
func encodeDatagram(t *testing.T, m message.Message) []byte {
	t.Helper()
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

func readDatagram(t *testing.T, pc net.PacketConn) []byte {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return buf[:n]
}

func decodeDatagram(t *testing.T, b []byte) message.Message {
	t.Helper()
	m := message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		t.Fatalf("decode reply: %v", err)
	}
	return m
}

func TestUDPDuplicateAnsweredFromCache(t *testing.T) {
	for _, tc := range links(t) {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			mux := coap.NewMux()
			mux.HandleFunc("/checkin", func(context.Context, *coap.Request) (*coap.Response, error) {
				n := calls.Add(1)
				return coap.Changed(coap.FormatText, fmt.Appendf(nil, "call %d", n)), nil
			}, coap.Link{}, codes.POST)
			s := start(t, tc.link, serveUDP, mux)
			pc := tc.link.client(t)
			defer pc.Close()

			buf := make([]byte, 64)
			opts, _, _ := message.Options{}.SetPath(buf, "/checkin")
			req := encodeDatagram(t, message.Message{
				Type: message.Confirmable, Code: codes.POST, MessageID: 0x4242,
				Token: []byte{1, 2, 3, 4}, Options: opts, Payload: []byte("tick"),
			})
			var replies [][]byte
			for range 3 {
				if _, err := pc.WriteTo(req, s.addr); err != nil {
					t.Fatal(err)
				}
				replies = append(replies, readDatagram(t, pc))
			}
			first := decodeDatagram(t, replies[0])
			if first.Type != message.Acknowledgement || first.MessageID != 0x4242 || first.Code != codes.Changed ||
				!bytes.Equal(first.Token, []byte{1, 2, 3, 4}) || string(first.Payload) != "call 1" {
				t.Fatalf("first reply %+v", first)
			}
			for i, r := range replies[1:] {
				if !bytes.Equal(r, replies[0]) {
					t.Fatalf("duplicate %d answered differently: % x vs % x", i+1, r, replies[0])
				}
			}
			if calls.Load() != 1 {
				t.Fatalf("handler called %d times for one Message ID", calls.Load())
			}
			if got := s.metric(t, "tumbler_coap_duplicates_total", "transport", "udp"); got != 2 {
				t.Fatalf("duplicates metric %v", got)
			}
		})
	}
}

func TestUDPMessageLayer(t *testing.T) {
	l := newRadioLink(t)
	s := start(t, l, serveUDP, newRecorder())
	pc := l.client(t)
	defer pc.Close()
	send := func(b []byte) {
		t.Helper()
		if _, err := pc.WriteTo(b, s.addr); err != nil {
			t.Fatal(err)
		}
	}

	// Ping: an Empty CON is answered with a matching RST.
	send(encodeDatagram(t, message.Message{Type: message.Confirmable, Code: codes.Empty, MessageID: 7}))
	if rst := decodeDatagram(t, readDatagram(t, pc)); rst.Type != message.Reset || rst.MessageID != 7 {
		t.Fatalf("ping answered %+v", rst)
	}
	// Garbage is dropped and counted.
	send([]byte{0x00, 0xff, 0xee})
	eventually(t, "malformed count", func() bool {
		return s.metric(t, "tumbler_coap_datagrams_dropped_total", "transport", "udp", "reason", "malformed") == 1
	})
	// NON request: NON response with a Message ID of the server's own.
	buf := make([]byte, 64)
	opts, _, _ := message.Options{}.SetPath(buf, "/hello")
	send(encodeDatagram(t, message.Message{Type: message.NonConfirmable, Code: codes.GET, MessageID: 9, Token: []byte{9}, Options: opts}))
	if resp := decodeDatagram(t, readDatagram(t, pc)); resp.Type != message.NonConfirmable || resp.Code != codes.Content || string(resp.Payload) != "hello" {
		t.Fatalf("NON answered %+v", resp)
	}
}

func TestUDPCriticalOptions(t *testing.T) {
	l := newRadioLink(t)
	var got []byte
	mux := coap.NewMux()
	mux.HandleFunc("/c", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		got, _ = r.Options.GetBytes(coap.OptionOSCORE)
		return nil, nil
	}, coap.Link{}, codes.POST)
	s := start(t, l, serveUDP, mux, coap.WithCriticalOptions(coap.OptionOSCORE))
	c := dialUDP(t, l, s)
	resp, err := c.Do(testContext(t), &coap.Request{
		Method: codes.POST, Path: "/c", ContentFormat: coap.FormatNone, Accept: coap.FormatNone,
		Options: message.Options{{ID: coap.OptionOSCORE, Value: []byte{0x09, 0x14}}},
	})
	wantResponse(t, resp, err, codes.Changed, nil)
	if !bytes.Equal(got, []byte{0x09, 0x14}) {
		t.Fatalf("handler saw OSCORE option % x", got)
	}
}

func TestUDPOverloadIsBounded(t *testing.T) {
	l := newRadioLink(t, radio.WithQueueLen(1024))
	release := make(chan struct{})
	var calls atomic.Int32
	h := coap.HandlerFunc(func(ctx context.Context, _ *coap.Request) (*coap.Response, error) {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	s := start(t, l, serveUDP, h, coap.WithUDPWorkers(1, 2))
	defer close(release)
	pc := l.client(t)
	defer pc.Close()
	buf := make([]byte, 64)
	opts, _, _ := message.Options{}.SetPath(buf, "/x")
	for i := range 50 {
		d := encodeDatagram(t, message.Message{Type: message.NonConfirmable, Code: codes.POST, MessageID: int32(i), Options: opts})
		if _, err := pc.WriteTo(d, s.addr); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "overload drops", func() bool {
		return s.metric(t, "tumbler_coap_datagrams_dropped_total", "transport", "udp", "reason", "overload") >= 40
	})
	if calls.Load() > 1 {
		t.Fatalf("one worker ran %d handlers at once", calls.Load())
	}
}

func TestRetransmissionOverLossyRadio(t *testing.T) {
	p := testPKI(t)
	fast := coap.WithTransmission(coap.Transmission{AckTimeout: 40 * time.Millisecond, RandomFactor: 1.5, MaxRetransmit: 8})
	tests := []struct {
		name  string
		serve serveFunc
		dial  func(t *testing.T, l link, s *serving) *coap.Client
	}{
		{"udp", serveUDP, func(t *testing.T, l link, s *serving) *coap.Client { return dialUDP(t, l, s, fast) }},
		{"dtls", serveDTLS, func(t *testing.T, l link, s *serving) *coap.Client {
			c, err := coap.DialDTLS(testContext(t), l.client(t), s.addr, coap.ClientDTLSConfig{
				Certificate: p.pledge(t, "lossy"), RootCAs: p.domain.Pool(), FlightInterval: 40 * time.Millisecond,
			}, fast)
			if err != nil {
				t.Fatalf("DialDTLS over a lossy link: %v", err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newRadioLink(t, radio.WithSeed(3), radio.WithLoss(0.2))
			var calls atomic.Int32
			mux := coap.NewMux()
			mux.HandleFunc("/checkin", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
				calls.Add(1)
				return coap.Changed(coap.FormatNone, r.Payload), nil
			}, coap.Link{}, codes.POST)
			s := start(t, l, tc.serve, mux, coap.WithDTLS(p.dtlsConfig()))
			c := tc.dial(t, l, s)
			const n = 20
			for i := range n {
				payload := fmt.Appendf(nil, "checkin %d", i)
				resp, err := c.Post(testContext(t), "/checkin", coap.FormatText, payload, coap.FormatNone)
				wantResponse(t, resp, err, codes.Changed, payload)
			}
			if calls.Load() != n {
				t.Fatalf("handler ran %d times for %d requests (duplicates not suppressed?)", calls.Load(), n)
			}
			if st := l.net.Stats(); st.DroppedLoss == 0 {
				t.Fatalf("the link lost nothing: %+v", st)
			}
		})
	}
}

// Block-wise in both directions over a lossy link: a request and a
// response of several blocks each still complete when blocks and their
// acknowledgements are lost.
func TestBlockwiseOverLossyRadio(t *testing.T) {
	p := testPKI(t)
	fast := coap.WithTransmission(coap.Transmission{AckTimeout: 40 * time.Millisecond, RandomFactor: 1.5, MaxRetransmit: 8})
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			l := newRadioLink(t, radio.WithSeed(seed), radio.WithLoss(0.1))
			mux := coap.NewMux()
			mux.HandleFunc("/big", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
				return coap.Changed(coap.FormatNone, bytes.Repeat(r.Payload, 2)), nil
			}, coap.Link{}, codes.POST)
			s := start(t, l, serveDTLS, mux, coap.WithDTLS(p.dtlsConfig()))
			c, err := coap.DialDTLS(testContext(t), l.client(t), s.addr, coap.ClientDTLSConfig{
				Certificate: p.pledge(t, "lossy"), RootCAs: p.domain.Pool(), FlightInterval: 40 * time.Millisecond,
			}, fast)
			if err != nil {
				t.Fatalf("DialDTLS: %v", err)
			}
			defer c.Close()
			for i := range 10 {
				payload := bytes.Repeat([]byte{byte('a' + i)}, 1500)
				ctx, cancel := context.WithTimeout(testContext(t), 20*time.Second)
				resp, err := c.Post(ctx, "/big", coap.FormatNone, payload, coap.FormatNone)
				cancel()
				wantResponse(t, resp, err, codes.Changed, bytes.Repeat(payload, 2))
			}
		})
	}
}

// A request whose every transmission is lost fails with ErrNoResponse
// once MAX_TRANSMIT_WAIT has passed, not at the caller's deadline.
func TestNoResponseAfterRetransmissions(t *testing.T) {
	l := newRadioLink(t, radio.WithLoss(1))
	s := start(t, l, serveUDP, coap.NewMux())
	c := dialUDP(t, l, s, coap.WithTransmission(coap.Transmission{AckTimeout: 20 * time.Millisecond, RandomFactor: 1, MaxRetransmit: 2}))
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	_, err := c.Get(ctx, "/x", coap.FormatNone)
	if !errors.Is(err, coap.ErrNoResponse) {
		t.Fatalf("err %v, want ErrNoResponse", err)
	}
	if ctx.Err() != nil {
		t.Fatal("gave up at the caller's deadline, not after the retransmissions")
	}
}
