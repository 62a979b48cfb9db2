package coap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func TestNewServerValidates(t *testing.T) {
	p := testPKI(t)
	noPool := p.dtlsConfig()
	noPool.ClientCAs = nil
	noCert := p.dtlsConfig()
	noCert.Certificate.Certificate = nil
	badMTU := p.dtlsConfig()
	badMTU.MTU = 100
	negative := p.dtlsConfig()
	negative.HandshakeTimeout = -time.Second
	tests := []struct {
		name string
		h    coap.Handler
		opts []coap.ServerOption
	}{
		{"nil handler", nil, nil},
		{"nil option", coap.NewMux(), []coap.ServerOption{nil}},
		{"DTLS without client CAs", coap.NewMux(), []coap.ServerOption{coap.WithDTLS(noPool)}},
		{"DTLS without certificate", coap.NewMux(), []coap.ServerOption{coap.WithDTLS(noCert)}},
		{"DTLS MTU too small", coap.NewMux(), []coap.ServerOption{coap.WithDTLS(badMTU)}},
		{"negative handshake timeout", coap.NewMux(), []coap.ServerOption{coap.WithDTLS(negative)}},
		{"zero max peers", coap.NewMux(), []coap.ServerOption{coap.WithMaxPeers(0)}},
		{"zero idle timeout", coap.NewMux(), []coap.ServerOption{coap.WithIdleTimeout(0)}},
		{"zero max payload", coap.NewMux(), []coap.ServerOption{coap.WithMaxPayload(0)}},
		{"nil registerer", coap.NewMux(), []coap.ServerOption{coap.WithMetrics(nil)}},
		{"elective option as critical", coap.NewMux(), []coap.ServerOption{coap.WithCriticalOptions(message.ETag)}},
		{"zero dedup entries", coap.NewMux(), []coap.ServerOption{coap.WithDedup(time.Minute, 0)}},
		{"zero workers", coap.NewMux(), []coap.ServerOption{coap.WithUDPWorkers(0, 10)}},
		{"block size not a power of two", coap.NewMux(), []coap.ServerOption{coap.WithBlockSize(1000)}},
		{"block size too large", coap.NewMux(), []coap.ServerOption{coap.WithBlockSize(2048)}},
		{"nil clock", coap.NewMux(), []coap.ServerOption{coap.WithClock(nil)}},
		{"nil rand", coap.NewMux(), []coap.ServerOption{coap.WithRand(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := coap.NewServer(tc.h, tc.opts...)
			if !errors.Is(err, coap.ErrInvalidOption) {
				t.Fatalf("err = %v, want ErrInvalidOption", err)
			}
			if s != nil {
				t.Fatal("server returned with an error")
			}
		})
	}
	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := coap.NewServer(coap.NewMux(), coap.WithMetrics(reg)); err != nil {
			t.Fatal(err)
		}
		if _, err := coap.NewServer(coap.NewMux(), coap.WithMetrics(reg)); !errors.Is(err, coap.ErrInvalidOption) {
			t.Fatalf("err = %v, want ErrInvalidOption", err)
		}
	})
	t.Run("failing rand", func(t *testing.T) {
		if _, err := coap.NewServer(coap.NewMux(), coap.WithRand(strings.NewReader(""))); err == nil {
			t.Fatal("NewServer with an empty rand succeeded")
		}
	})
}

func TestServeDTLSWithoutConfig(t *testing.T) {
	l := newRadioLink(t)
	srv, err := coap.NewServer(coap.NewMux())
	if err != nil {
		t.Fatal(err)
	}
	pc := l.server(t)
	if err := srv.ServeDTLS(testContext(t), pc); !errors.Is(err, coap.ErrNoDTLS) {
		t.Fatalf("err = %v, want ErrNoDTLS", err)
	}
	if _, err := pc.WriteTo([]byte("x"), radio.Addr("y")); !errors.Is(err, net.ErrClosed) {
		t.Fatal("ServeDTLS did not close its PacketConn")
	}
}

func TestListenersStopTogether(t *testing.T) {
	p := testPKI(t)
	tests := []struct {
		name string
		stop func(cancel context.CancelFunc, srv *coap.Server)
	}{
		{"context cancelled", func(cancel context.CancelFunc, _ *coap.Server) { cancel() }},
		{"server closed", func(_ context.CancelFunc, srv *coap.Server) { _ = srv.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newRadioLink(t)
			srv, err := coap.NewServer(newRecorder(), coap.WithDTLS(p.dtlsConfig()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			udpPC, dtlsPC := l.server(t), l.server(t)
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return srv.ServeUDP(gctx, udpPC) })
			g.Go(func() error { return srv.ServeDTLS(gctx, dtlsPC) })

			// Both listeners answer before the stop.
			c := dialUDP(t, l, &serving{addr: udpPC.LocalAddr()})
			resp, err := c.Get(testContext(t), "/hello", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, nil)
			d := dialDTLS(t, l, &serving{addr: dtlsPC.LocalAddr()}, p.pledge(t, "pledge-1"))
			resp, err = d.Get(testContext(t), "/hello", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, nil)

			tc.stop(cancel, srv)
			done := make(chan error, 1)
			go func() { done <- g.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("listeners returned %v", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("listeners did not stop")
			}
		})
	}
	t.Run("serve after close", func(t *testing.T) {
		l := newRadioLink(t)
		srv, err := coap.NewServer(coap.NewMux())
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.Close()
		pc := l.server(t)
		if err := srv.ServeUDP(testContext(t), pc); err != nil {
			t.Fatalf("ServeUDP after Close = %v", err)
		}
		if _, err := pc.WriteTo([]byte("x"), radio.Addr("y")); !errors.Is(err, net.ErrClosed) {
			t.Fatal("ServeUDP did not close its PacketConn")
		}
	})
}

func TestResponseOptionsAndQuery(t *testing.T) {
	l := newRadioLink(t)
	var seen *coap.Request
	mux := coap.NewMux()
	mux.HandleFunc("/opts", func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		seen = r
		return &coap.Response{
			Code: codes.Content, ContentFormat: coap.FormatJSON, Payload: []byte(`{}`),
			Options: message.Options{
				{ID: message.ETag, Value: []byte{0xe7}},
				{ID: message.ContentFormat, Value: []byte{0}}, // ignored: ContentFormat wins
				{ID: message.MaxAge, Value: []byte{60}},
			},
		}, nil
	}, coap.Link{})
	s := start(t, l, serveUDP, mux)
	c := dialUDP(t, l, s)
	resp, err := c.Do(testContext(t), &coap.Request{
		Method: codes.GET, Path: "/opts", Query: []string{"rt=brski*", "x=1"},
		ContentFormat: coap.FormatNone, Accept: coap.FormatJSON,
	})
	wantResponse(t, resp, err, codes.Content, []byte(`{}`))
	if resp.ContentFormat != coap.FormatJSON {
		t.Fatalf("Content-Format %d", resp.ContentFormat)
	}
	if etag, err := resp.Options.GetBytes(message.ETag); err != nil || etag[0] != 0xe7 {
		t.Fatalf("ETag %v %v", etag, err)
	}
	if age, err := resp.Options.GetUint32(message.MaxAge); err != nil || age != 60 {
		t.Fatalf("Max-Age %v %v", age, err)
	}
	if len(seen.Query) != 2 || seen.Query[0] != "rt=brski*" || seen.Query[1] != "x=1" {
		t.Fatalf("query %q", seen.Query)
	}
	if seen.Accept != coap.FormatJSON || seen.ContentFormat != coap.FormatNone || seen.Path != "/opts" {
		t.Fatalf("request %+v", seen)
	}
}

func TestWellKnownCoreOverUDP(t *testing.T) {
	l := newRadioLink(t)
	mux := coap.NewMux()
	mux.AddLink("/.well-known/brski", [2]string{"rt", "brski"})
	mux.HandleFunc("/.well-known/brski/rv", func(context.Context, *coap.Request) (*coap.Response, error) {
		return nil, nil
	}, coap.Link{Attrs: [][2]string{{"rt", "brski.rv"}, {"ct", "836"}}}, codes.POST)
	s := start(t, l, serveUDP, mux)
	c := dialUDP(t, l, s)
	resp, err := c.Do(testContext(t), &coap.Request{
		Method: codes.GET, Path: coap.WellKnownCore, Query: []string{"rt=brski*"},
		ContentFormat: coap.FormatNone, Accept: coap.FormatNone,
	})
	wantResponse(t, resp, err, codes.Content, []byte("</.well-known/brski>;rt=brski,</.well-known/brski/rv>;rt=brski.rv;ct=836"))
	if resp.ContentFormat != coap.FormatLinkFormat {
		t.Fatalf("Content-Format %d", resp.ContentFormat)
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

type logLine struct {
	Level, Message, Code, Error, Path, Transport string
}

func (b *syncBuffer) lines(t *testing.T) []logLine {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []logLine
	dec := json.NewDecoder(bytes.NewReader(b.buf.Bytes()))
	for dec.More() {
		var l logLine
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func TestErrorsLoggedOnceWithCause(t *testing.T) {
	l := newRadioLink(t)
	logs := &syncBuffer{}
	s := start(t, l, serveUDP, newRecorder(), coap.WithLogger(zerolog.New(logs).Level(zerolog.InfoLevel)))
	c := dialUDP(t, l, s)
	ctx := testContext(t)
	tests := []struct {
		path, level, code string
		err               error
	}{
		{"/forbidden", "info", "4.03", coap.Errorf(codes.Forbidden, "serial mismatch", errSerialCause)},
		{"/boom", "error", "5.00", errDatabase},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := c.Post(ctx, tc.path, coap.FormatNone, nil, coap.FormatNone)
			if err != nil {
				t.Fatal(err)
			}
			if leaks(resp.Payload) {
				t.Fatalf("cause on the wire: %q", resp.Payload)
			}
			var found []logLine
			for _, line := range logs.lines(t) {
				if line.Path == tc.path {
					found = append(found, line)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%d log lines for %s, want 1: %+v", len(found), tc.path, found)
			}
			got := found[0]
			if got.Level != tc.level || got.Code != tc.code || got.Error != tc.err.Error() || got.Transport != "udp" {
				t.Fatalf("log line %+v, want level %s code %s error %q", got, tc.level, tc.code, tc.err)
			}
		})
	}
}
