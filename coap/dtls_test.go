package coap_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func TestDTLSRoundTrip(t *testing.T) {
	// The radio runs at the PMTU cBRSKI assumes (1024): every handshake
	// flight and every block must fit.
	pmtu := newRadioLink(t, radio.WithMTU(coap.DefaultDTLSMTU))
	for _, tc := range []struct {
		name string
		link link
	}{{"radio", pmtu}, {"loopback", udpLink{}}} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPKI(t)
			rec := newRecorder()
			s := start(t, tc.link, serveDTLS, rec, coap.WithDTLS(p.dtlsConfig()))
			ctx := testContext(t)

			c := dialDTLS(t, tc.link, s, p.pledge(t, "pledge-1"))
			if chain := c.PeerChain(); len(chain) == 0 || chain[0].Subject.CommonName != "registrar.example" {
				t.Fatalf("client PeerChain = %v", chain)
			}

			resp, err := c.Get(ctx, "/hello", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, []byte("hello"))
			if resp.ContentFormat != coap.FormatText {
				t.Fatalf("Content-Format %d", resp.ContentFormat)
			}

			// A few KiB each way: Block1 up, Block2 down.
			up := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, 1400)
			resp, err = c.Post(ctx, "/echo", coap.FormatCBOR, up, coap.FormatNone)
			wantResponse(t, resp, err, codes.Changed, up)
			resp, err = c.Get(ctx, "/big", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, bigBody)

			// A second association, from another pledge.
			c2 := dialDTLS(t, tc.link, s, p.pledge(t, "pledge-2"))
			resp, err = c2.Get(ctx, "/hello", coap.FormatNone)
			wantResponse(t, resp, err, codes.Content, []byte("hello"))

			seen := rec.requests()
			if len(seen) != 4 {
				t.Fatalf("handler saw %d requests, want 4", len(seen))
			}
			first := seen[0].Peer
			for i, r := range seen[:3] {
				if r.Peer.Session == "" || r.Peer.Session != first.Session {
					t.Fatalf("request %d session %q, first %q", i, r.Peer.Session, first.Session)
				}
				if len(r.Peer.Chain) != 2 || r.Peer.Chain[0].Subject.CommonName != "pledge-1" ||
					r.Peer.Chain[1].Subject.CommonName != "Manufacturer IDevID CA" {
					t.Fatalf("request %d chain %v", i, r.Peer.Chain)
				}
				if !r.Peer.Secure() || r.Peer.Addr == nil {
					t.Fatalf("request %d peer %+v", i, r.Peer)
				}
			}
			if seen[1].ContentFormat != coap.FormatCBOR || !bytes.Equal(seen[1].Payload, up) {
				t.Fatalf("echo request format %d, %d bytes", seen[1].ContentFormat, len(seen[1].Payload))
			}
			if other := seen[3].Peer; other.Session == first.Session || other.Chain[0].Subject.CommonName != "pledge-2" {
				t.Fatalf("second association session %q (first %q), subject %v", other.Session, first.Session, other.Chain[0].Subject)
			}
			if got := s.metric(t, "tumbler_coap_dtls_handshakes_total", "result", "ok"); got != 2 {
				t.Fatalf("ok handshakes = %v", got)
			}
			if got := s.metric(t, "tumbler_coap_dtls_sessions_active"); got != 2 {
				t.Fatalf("active sessions = %v", got)
			}
		})
	}
	if st := pmtu.net.Stats(); st.DroppedMTU != 0 {
		t.Fatalf("%d datagrams above the %d-byte PMTU", st.DroppedMTU, coap.DefaultDTLSMTU)
	}
}

func TestDTLSNewAssociationNewSession(t *testing.T) {
	l := newRadioLink(t)
	p := testPKI(t)
	rec := newRecorder()
	s := start(t, l, serveDTLS, rec, coap.WithDTLS(p.dtlsConfig()))
	ctx := testContext(t)
	cert := p.pledge(t, "pledge-1")
	for range 2 {
		c := dialDTLS(t, l, s, cert)
		resp, err := c.Get(ctx, "/hello", coap.FormatNone)
		wantResponse(t, resp, err, codes.Content, nil)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	seen := rec.requests()
	if len(seen) != 2 || seen[0].Peer.Session == seen[1].Peer.Session {
		t.Fatalf("same certificate, new association: sessions %q and %q", seen[0].Peer.Session, seen[1].Peer.Session)
	}
	// close_notify ends the server side of both associations.
	eventually(t, "sessions to end", func() bool { return s.metric(t, "tumbler_coap_dtls_sessions_active") == 0 })
}

func TestDTLSErrorsBecomeCodes(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	rec := newRecorder()
	s := start(t, l, serveDTLS, rec, coap.WithDTLS(p.dtlsConfig()), coap.WithMaxPayload(1000))
	c := dialDTLS(t, l, s, p.pledge(t, "pledge-1"))
	tests := []struct {
		name    string
		req     *coap.Request
		code    codes.Code
		payload string
	}{
		{"typed error carries code and diagnostic",
			&coap.Request{Method: codes.POST, Path: "/forbidden", ContentFormat: coap.FormatNone, Accept: coap.FormatNone},
			codes.Forbidden, "serial mismatch"},
		{"untyped error is internal",
			&coap.Request{Method: codes.POST, Path: "/boom", ContentFormat: coap.FormatNone, Accept: coap.FormatNone},
			codes.InternalServerError, "internal error"},
		{"panic is internal",
			&coap.Request{Method: codes.GET, Path: "/panic", ContentFormat: coap.FormatNone, Accept: coap.FormatNone},
			codes.InternalServerError, "internal error"},
		{"unknown path",
			&coap.Request{Method: codes.GET, Path: "/nope", ContentFormat: coap.FormatNone, Accept: coap.FormatNone},
			codes.NotFound, "no such resource"},
		{"wrong method",
			&coap.Request{Method: codes.DELETE, Path: "/hello", ContentFormat: coap.FormatNone, Accept: coap.FormatNone},
			codes.MethodNotAllowed, ""},
		{"oversize request",
			&coap.Request{Method: codes.POST, Path: "/echo", ContentFormat: coap.FormatCBOR, Accept: coap.FormatNone, Payload: make([]byte, 3000)},
			codes.RequestEntityTooLarge, ""},
		{"nil response is 2.04",
			&coap.Request{Method: codes.POST, Path: "/empty", ContentFormat: coap.FormatNone, Accept: coap.FormatNone},
			codes.Changed, ""},
		{"unknown critical option",
			&coap.Request{Method: codes.POST, Path: "/echo", ContentFormat: coap.FormatNone, Accept: coap.FormatNone,
				Options: []coapOption{{ID: coap.OptionOSCORE, Value: []byte{0x09}}}},
			codes.BadOption, "unknown critical option 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Do(testContext(t), tc.req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if resp.Code != tc.code {
				t.Fatalf("code %v (%q), want %v", resp.Code, resp.Payload, tc.code)
			}
			if tc.payload != "" && string(resp.Payload) != tc.payload {
				t.Fatalf("payload %q, want %q", resp.Payload, tc.payload)
			}
			if leaks(resp.Payload) {
				t.Fatalf("diagnostic leaks the cause: %q", resp.Payload)
			}
			if tc.code >= codes.BadRequest && resp.ContentFormat != coap.FormatNone {
				t.Fatalf("diagnostic with Content-Format %d", resp.ContentFormat)
			}
		})
	}
	if got := s.metric(t, "tumbler_coap_responses_total", "transport", "dtls", "code", "4.03"); got != 1 {
		t.Fatalf("4.03 responses = %v", got)
	}
}

func TestDTLSRefusesClients(t *testing.T) {
	p := testPKI(t)
	foreign, err := p.foreign.Client("pledge-x")
	if err != nil {
		t.Fatal(err)
	}
	revoked := p.pledge(t, "revoked-1")
	errRevoked := errors.New("revoked")
	tests := []struct {
		name   string
		cfg    coap.ClientDTLSConfig
		verify func([]*x509.Certificate) error
	}{
		{"certificate from an unknown CA", coap.ClientDTLSConfig{Certificate: foreign}, nil},
		{"no client certificate", coap.ClientDTLSConfig{}, nil},
		{"VerifyPeer hook refuses", coap.ClientDTLSConfig{Certificate: revoked}, func(chain []*x509.Certificate) error {
			if chain[0].Subject.SerialNumber == "revoked-1" {
				return errRevoked
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newRadioLink(t)
			rec := newRecorder()
			dcfg := p.dtlsConfig()
			dcfg.VerifyPeer = tc.verify
			s := start(t, l, serveDTLS, rec, coap.WithDTLS(dcfg))
			cfg := tc.cfg
			cfg.RootCAs = p.domain.Pool()
			c, err := coap.DialDTLS(testContext(t), l.client(t), s.addr, cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("handshake succeeded")
			}
			if !errors.Is(err, coap.ErrHandshake) {
				t.Fatalf("err = %v, want ErrHandshake", err)
			}
			// pion's own error stays reachable: the server refused with an
			// alert during the handshake.
			var hsErr *dtls.HandshakeError
			if !errors.As(err, &hsErr) {
				t.Fatalf("err = %v, want a wrapped *dtls.HandshakeError", err)
			}
			eventually(t, "failed handshake count", func() bool {
				return s.metric(t, "tumbler_coap_dtls_handshakes_total", "result", "failed") == 1
			})
			if len(rec.requests()) != 0 {
				t.Fatal("a refused client reached the handler")
			}
		})
	}
}

func TestDTLSUnknownPeersCreateNoState(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	rec := newRecorder()
	s := start(t, l, serveDTLS, rec, coap.WithDTLS(p.dtlsConfig()))
	attacker := l.client(t)
	defer attacker.Close()
	appData := []byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4} // epoch 1 application data
	coapPing := []byte{0x40, 0x00, 0x12, 0x34}
	for _, d := range [][]byte{[]byte("garbage"), appData, coapPing} {
		if _, err := attacker.WriteTo(d, s.addr); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "rejections", func() bool {
		return s.metric(t, "tumbler_coap_datagrams_dropped_total", "transport", "dtls", "reason", "rejected") == 3
	})
	// A real pledge is unaffected.
	c := dialDTLS(t, l, s, p.pledge(t, "pledge-1"))
	resp, err := c.Get(testContext(t), "/hello", coap.FormatNone)
	wantResponse(t, resp, err, codes.Content, []byte("hello"))
	if got := s.metric(t, "tumbler_coap_dtls_handshakes_total", "result", "ok"); got != 1 {
		t.Fatalf("handshakes = %v", got)
	}
}

func TestDTLSMaxPeers(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	rec := newRecorder()
	s := start(t, l, serveDTLS, rec, coap.WithDTLS(p.dtlsConfig()), coap.WithMaxPeers(1))
	ctx := testContext(t)
	first := dialDTLS(t, l, s, p.pledge(t, "pledge-1"))

	// The second pledge's ClientHellos are dropped while the first holds
	// the only slot; it gives up after its handshake timeout.
	_, err := coap.DialDTLS(ctx, l.client(t), s.addr, coap.ClientDTLSConfig{
		Certificate: p.pledge(t, "pledge-2"), RootCAs: p.domain.Pool(),
		HandshakeTimeout: 300 * time.Millisecond, FlightInterval: 50 * time.Millisecond,
	})
	if !errors.Is(err, coap.ErrHandshake) {
		t.Fatalf("second pledge err = %v, want ErrHandshake", err)
	}
	if got := s.metric(t, "tumbler_coap_datagrams_dropped_total", "transport", "dtls", "reason", "peer_limit"); got < 1 {
		t.Fatalf("peer_limit drops = %v", got)
	}
	// Once the first association closes, the slot is free again.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slot release", func() bool { return s.metric(t, "tumbler_coap_dtls_sessions_active") == 0 })
	second := dialDTLS(t, l, s, p.pledge(t, "pledge-2"))
	resp, err := second.Get(ctx, "/hello", coap.FormatNone)
	wantResponse(t, resp, err, codes.Content, nil)
}

func TestDTLSIdleTimeout(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := start(t, l, serveDTLS, newRecorder(), coap.WithDTLS(p.dtlsConfig()),
		coap.WithIdleTimeout(time.Minute), coap.WithClock(clk.Now))
	c := dialDTLS(t, l, s, p.pledge(t, "pledge-1"))
	resp, err := c.Get(testContext(t), "/hello", coap.FormatNone)
	wantResponse(t, resp, err, codes.Content, nil)
	if got := s.metric(t, "tumbler_coap_dtls_sessions_active"); got != 1 {
		t.Fatalf("active sessions = %v", got)
	}
	clk.advance(61 * time.Second)
	eventually(t, "idle session to close", func() bool { return s.metric(t, "tumbler_coap_dtls_sessions_active") == 0 })
}

func TestDTLSHandlerContextCancelledOnClose(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	entered := make(chan struct{})
	cancelled := make(chan error, 1)
	h := coap.HandlerFunc(func(ctx context.Context, _ *coap.Request) (*coap.Response, error) {
		close(entered)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return nil, ctx.Err()
	})
	srv, err := coap.NewServer(h, coap.WithDTLS(p.dtlsConfig()))
	if err != nil {
		t.Fatal(err)
	}
	pc := l.server(t)
	done := make(chan error, 1)
	go func() { done <- srv.ServeDTLS(context.Background(), pc) }()
	c, err := coap.DialDTLS(testContext(t), l.client(t), pc.LocalAddr(), coap.ClientDTLSConfig{
		Certificate: p.pledge(t, "pledge-1"), RootCAs: p.domain.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reqDone := make(chan struct{})
	reqCtx, reqCancel := context.WithCancel(testContext(t))
	defer func() {
		reqCancel() // the server is gone; stop waiting for its answer
		<-reqDone
	}()
	go func() {
		defer close(reqDone)
		_, _ = c.Get(reqCtx, "/slow", coap.FormatNone)
	}()
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("handler not reached")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler ctx err = %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("handler context not cancelled")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeDTLS = %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("ServeDTLS did not return")
	}
}

func TestClientDTLSConfigValidation(t *testing.T) {
	p := testPKI(t)
	noKey := p.pledge(t, "k")
	noKey.PrivateKey = nil
	tests := []struct {
		name string
		cfg  coap.ClientDTLSConfig
		opts []coap.ClientOption
	}{
		{"no trust decision", coap.ClientDTLSConfig{}, nil},
		{"both roots and insecure", coap.ClientDTLSConfig{RootCAs: p.domain.Pool(), InsecureSkipVerify: true}, nil},
		{"certificate without key", coap.ClientDTLSConfig{InsecureSkipVerify: true, Certificate: noKey}, nil},
		{"tiny MTU", coap.ClientDTLSConfig{InsecureSkipVerify: true, MTU: 100}, nil},
		{"bad transmission", coap.ClientDTLSConfig{InsecureSkipVerify: true},
			[]coap.ClientOption{coap.WithTransmission(coap.Transmission{AckTimeout: 0, RandomFactor: 1.5})}},
		{"bad block size", coap.ClientDTLSConfig{InsecureSkipVerify: true},
			[]coap.ClientOption{coap.WithClientBlockSize(100)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := radio.NewNetwork()
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			pc, err := n.Listen("c")
			if err != nil {
				t.Fatal(err)
			}
			_, err = coap.DialDTLS(testContext(t), pc, radio.Addr("s"), tc.cfg, tc.opts...)
			if !errors.Is(err, coap.ErrInvalidOption) {
				t.Fatalf("err = %v, want ErrInvalidOption", err)
			}
			// The failed dial closed pc.
			if _, err := pc.WriteTo([]byte("x"), radio.Addr("s")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("pc still open after failed dial: %v", err)
			}
		})
	}
}

func TestDTLSProvisionalClient(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	s := start(t, l, serveDTLS, newRecorder(), coap.WithDTLS(p.dtlsConfig()))
	c, err := coap.DialDTLS(testContext(t), l.client(t), s.addr, coap.ClientDTLSConfig{
		Certificate: p.pledge(t, "pledge-1"), InsecureSkipVerify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chain := c.PeerChain()
	if len(chain) == 0 {
		t.Fatal("no server chain")
	}
	// What a pledge does after the voucher: verify against the pinned CA.
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: p.domain.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("server chain does not verify against the domain CA: %v", err)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: p.foreign.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("server chain verifies against an unrelated CA")
	}
}

func TestDTLSCipherSuites(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t, radio.WithMTU(coap.DefaultDTLSMTU))
	s := start(t, l, serveDTLS, newRecorder(), coap.WithDTLS(p.dtlsConfig()))
	cert := p.pledge(t, "pledge-1")
	tests := []struct {
		name  string
		suite dtls.CipherSuiteID
	}{
		{"CCM_8 (mandatory for CoAP)", dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8},
		{"GCM", dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"CCM", dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A bare pion client offering a single suite, as a constrained
			// pledge would.
			conn, err := dtls.ClientWithOptions(l.client(t), s.addr,
				dtls.WithCipherSuites(tc.suite), dtls.WithCertificates(cert), dtls.WithRootCAs(p.domain.Pool()),
				dtls.WithMTU(coap.DefaultDTLSMTU))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.HandshakeContext(testContext(t)); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			state, _ := conn.ConnectionState()
			if state.CipherSuiteID != tc.suite {
				t.Fatalf("negotiated %v", state.CipherSuiteID)
			}
		})
	}
	if st := l.net.Stats(); st.DroppedMTU != 0 {
		t.Fatalf("%d handshake datagrams above the %d-byte PMTU", st.DroppedMTU, coap.DefaultDTLSMTU)
	}
}

func TestDTLSConnectionIDOffered(t *testing.T) {
	p := testPKI(t)
	l := newRadioLink(t)
	s := start(t, l, serveDTLS, newRecorder(), coap.WithDTLS(p.dtlsConfig()))
	c, err := coap.DialDTLS(testContext(t), l.client(t), s.addr, coap.ClientDTLSConfig{
		Certificate: p.pledge(t, "pledge-1"), RootCAs: p.domain.Pool(), ConnectionID: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(testContext(t), "/hello", coap.FormatNone)
	wantResponse(t, resp, err, codes.Content, []byte("hello"))
}
