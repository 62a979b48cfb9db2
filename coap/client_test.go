package coap_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func TestClientRejectsBadRequests(t *testing.T) {
	l := newRadioLink(t)
	s := start(t, l, serveUDP, newRecorder())
	c := dialUDP(t, l, s)
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name string
		req  *coap.Request
	}{
		{"nil request", nil},
		{"response code as method", &coap.Request{Method: codes.Content, Path: "/x", ContentFormat: coap.FormatNone, Accept: coap.FormatNone}},
		{"empty method", &coap.Request{Method: codes.Empty, Path: "/x", ContentFormat: coap.FormatNone, Accept: coap.FormatNone}},
		{"content format out of range", &coap.Request{Method: codes.GET, Path: "/x", ContentFormat: 70000, Accept: coap.FormatNone}},
		{"negative accept", &coap.Request{Method: codes.GET, Path: "/x", ContentFormat: coap.FormatNone, Accept: -5}},
		{"path segment too long", &coap.Request{Method: codes.GET, Path: "/" + string(long), ContentFormat: coap.FormatNone, Accept: coap.FormatNone}},
		{"query too long", &coap.Request{Method: codes.GET, Path: "/x", Query: []string{string(long)}, ContentFormat: coap.FormatNone, Accept: coap.FormatNone}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Do(testContext(t), tc.req); !errors.Is(err, coap.ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestClientClosed(t *testing.T) {
	l := newRadioLink(t)
	s := start(t, l, serveUDP, newRecorder())
	c, err := coap.DialUDP(testContext(t), l.client(t), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := c.Get(testContext(t), "/hello", coap.FormatNone); !errors.Is(err, coap.ErrClientClosed) {
		t.Fatalf("err = %v, want ErrClientClosed", err)
	}
}

func TestClientTimeout(t *testing.T) {
	l := newRadioLink(t)
	silent := l.server(t) // nobody serves it
	defer silent.Close()
	c, err := coap.DialUDP(testContext(t), l.client(t), silent.LocalAddr(),
		coap.WithTransmission(coap.Transmission{AckTimeout: 20 * time.Millisecond, RandomFactor: 1, MaxRetransmit: 2}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The caller's deadline comes before MAX_TRANSMIT_WAIT (160 ms here;
	// TestNoResponseAfterRetransmissions covers the other order).
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "/hello", coap.FormatNone); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	// The client retransmitted the Confirmable request.
	if sent := l.net.Stats().Sent; sent < 2 {
		t.Fatalf("client sent %d datagrams", sent)
	}
}

func TestDialUDPValidates(t *testing.T) {
	n, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tests := []struct {
		name  string
		raddr *radio.Addr
		opts  []coap.ClientOption
	}{
		{"nil address", nil, nil},
		{"nil option", ptr(radio.Addr("s")), []coap.ClientOption{nil}},
		{"random factor below one", ptr(radio.Addr("s")), []coap.ClientOption{coap.WithTransmission(coap.Transmission{AckTimeout: time.Second, RandomFactor: 0.5})}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := n.Listen(string(rune('a' + i)))
			if err != nil {
				t.Fatal(err)
			}
			var err2 error
			if tc.raddr == nil {
				_, err2 = coap.DialUDP(testContext(t), pc, nil, tc.opts...)
			} else {
				_, err2 = coap.DialUDP(testContext(t), pc, *tc.raddr, tc.opts...)
			}
			if !errors.Is(err2, coap.ErrInvalidOption) {
				t.Fatalf("err = %v, want ErrInvalidOption", err2)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
