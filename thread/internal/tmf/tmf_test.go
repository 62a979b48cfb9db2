package tmf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func pair(t *testing.T, h coap.Handler, non ...string) (client, server *Session) {
	t.Helper()
	key, _ := pki.GenerateKey(nil)
	ca, err := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "CA"}})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(cn string) tls.Certificate {
		k, _ := pki.GenerateKey(nil)
		c, err := pki.NewRegistrarCert(time.Now(), &pki.Issuer{Cert: ca, Key: key}, k.Public(), pki.Profile{Subject: pkix.Name{CommonName: cn}})
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k}
	}
	nw, err := radio.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	cpc, _ := nw.Listen("c:1")
	spc, _ := nw.Listen("s:1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		server, err = Accept(ctx, spc, radio.Addr("c:1"), DTLS{Certificate: issue("server"), Roots: pool},
			Config{Handler: h, ID: "srv", NonConfirmableOnly: non})
		done <- err
	}()
	client, err = Dial(ctx, cpc, radio.Addr("s:1"), DTLS{Certificate: issue("client"), Roots: pool}, Config{Handler: h, ID: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestBothDirections(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	notes := make(chan *coap.Request, 4)
	h := coap.HandlerFunc(func(_ context.Context, r *coap.Request) (*coap.Response, error) {
		switch r.Path {
		case "/echo":
			return coap.Changed(coap.FormatText, r.Payload), nil
		case "/note", "/c/tx":
			notes <- r
			return nil, nil
		case "/fail":
			return nil, coap.Errorf(codes.Forbidden, "no", nil)
		case "/panic":
			panic("boom")
		}
		return nil, coap.Errorf(codes.NotFound, "no such resource", nil)
	})
	client, server := pair(t, h, "/c/tx")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range []*Session{client, server} {
		resp, err := s.Do(ctx, &coap.Request{Method: codes.POST, Path: "/echo", ContentFormat: coap.FormatText, Payload: []byte("x")})
		if err != nil || resp.Code != codes.Changed || string(resp.Payload) != "x" || resp.ContentFormat != coap.FormatText {
			t.Fatalf("%s echo: %+v %v", s.peer.Session, resp, err)
		}
		if err := s.Notify(ctx, &coap.Request{Method: codes.POST, Path: "/note", ContentFormat: coap.FormatNone, Payload: []byte("n")}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-notes:
			if string(r.Payload) != "n" || len(r.Peer.Chain) == 0 {
				t.Fatalf("note %+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("notification lost")
		}
	}
	for path, want := range map[string]codes.Code{"/fail": codes.Forbidden, "/panic": codes.InternalServerError, "/c/tx": codes.BadRequest} {
		resp, err := client.Do(ctx, &coap.Request{Method: codes.POST, Path: path, ContentFormat: coap.FormatNone})
		if err != nil || resp.Code != want {
			t.Fatalf("%s: %+v %v, want %v", path, resp, err, want)
		}
	}
	if len(notes) != 0 {
		t.Fatal("Confirmable c/tx reached the handler")
	}
	if err := client.Notify(ctx, &coap.Request{Method: codes.POST, Path: "/c/tx", ContentFormat: coap.FormatNone}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-notes:
	case <-time.After(5 * time.Second):
		t.Fatal("Non-confirmable c/tx lost")
	}
	if _, err := client.Do(ctx, &coap.Request{Method: codes.Changed, Path: "/x"}); !errors.Is(err, ErrRequest) {
		t.Fatalf("response code as method: %v", err)
	}
	if _, err := client.Do(ctx, &coap.Request{Method: codes.POST, Path: "/x", Payload: make([]byte, DefaultMaxMessage)}); !errors.Is(err, ErrRequest) {
		t.Fatalf("oversize: %v", err)
	}
	server.Close()
	select {
	case <-client.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not see the close")
	}
	if err := client.Notify(ctx, &coap.Request{Method: codes.POST, Path: "/note"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Notify after close: %v", err)
	}
}

func TestHandshakeRefusesUnknownCA(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	key, _ := pki.GenerateKey(nil)
	ca, _ := pki.NewCA(time.Now(), key, pki.Profile{Subject: pkix.Name{CommonName: "CA"}})
	other := x509.NewCertPool()
	otherKey, _ := pki.GenerateKey(nil)
	otherCA, _ := pki.NewCA(time.Now(), otherKey, pki.Profile{Subject: pkix.Name{CommonName: "Other"}})
	other.AddCert(otherCA)
	k, _ := pki.GenerateKey(nil)
	c, _ := pki.NewRegistrarCert(time.Now(), &pki.Issuer{Cert: ca, Key: key}, k.Public(), pki.Profile{Subject: pkix.Name{CommonName: "x"}})
	cert := tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k}
	nw, _ := radio.NewNetwork()
	defer nw.Close()
	cpc, _ := nw.Listen("c:1")
	spc, _ := nw.Listen("s:1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		s, err := Accept(ctx, spc, radio.Addr("c:1"), DTLS{Certificate: cert, Roots: other, HandshakeTimeout: 2 * time.Second}, Config{})
		if err == nil {
			s.Close()
		}
	}()
	_, err := Dial(ctx, cpc, radio.Addr("s:1"), DTLS{Certificate: cert, Roots: other, HandshakeTimeout: 2 * time.Second}, Config{})
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("%v, want ErrHandshake", err)
	}
	if _, err := Dial(ctx, nopPC{}, radio.Addr("s:1"), DTLS{}, Config{}); !errors.Is(err, ErrRequest) {
		t.Fatalf("empty DTLS config: %v", err)
	}
	<-accepted
}

type nopPC struct{ net.PacketConn }

func (nopPC) Close() error { return nil }
