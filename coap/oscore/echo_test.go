package oscore

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// echoServer is the C.1 server after a restart without its replay window.
func echoServer(t *testing.T, clk *fakeClock) (client, server *Context) {
	t.Helper()
	return pair(t, []ContextOption{WithSenderSequence(500)}, []ContextOption{
		WithEchoRecovery(), WithClock(clk.Now), WithRand(&counterReader{}), WithSenderSequence(1000),
	})
}

// challenge sends a request and returns the server's Echo challenge as the
// client sees it.
func challenge(t *testing.T, client, server *Context) (echo []byte, first Message) {
	t.Helper()
	first, cex, err := client.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	_, sex, err := server.UnprotectRequest(first)
	if !errors.Is(err, ErrEchoRequired) {
		t.Fatalf("first request after restart: %v, want ErrEchoRequired", err)
	}
	if !sex.EchoChallenge() {
		t.Fatal("exchange has no Echo challenge")
	}
	resp, err := server.ProtectEchoChallenge(helloResponse(), sex)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Changed {
		t.Errorf("outer code %v, want 2.04", resp.Code)
	}
	ov, _, _ := findOSCORE(resp.Options)
	dv, err := DecodeOptionValue(ov)
	if err != nil || dv.PartialIV == nil {
		t.Fatalf("Echo response must carry the server's Partial IV (B.1.2): option %x", ov)
	}
	if hasOption(resp.Options, optEcho) {
		t.Error("Echo must be an Inner option")
	}
	dec, err := client.UnprotectResponse(resp, cex)
	if err != nil {
		t.Fatalf("client verifying the challenge: %v", err)
	}
	if dec.Code != codes.Unauthorized || len(dec.Payload) != 0 {
		t.Fatalf("challenge = %v %q, want 4.01 without payload", dec.Code, dec.Payload)
	}
	echo, ok := optionValue(dec.Options, optEcho)
	if !ok || len(echo) == 0 {
		t.Fatal("no Echo option in the challenge")
	}
	return bytes.Clone(echo), first
}

func requestWithEcho(echo []byte) Message {
	m := getRequest()
	m.Options = m.Options.Add(optEchoOption(echo))
	return m
}

func TestEchoRecovery(t *testing.T) {
	clk := newFakeClock()
	client, server := echoServer(t, clk)
	if _, ok := server.ReplayWindow(); ok {
		t.Fatal("window reported trustworthy before Echo recovery")
	}
	echo, first := challenge(t, client, server)

	second, _, err := client.ProtectRequest(requestWithEcho(echo))
	if err != nil {
		t.Fatal(err)
	}
	dec, ex, err := server.UnprotectRequest(second)
	if err != nil {
		t.Fatalf("request with Echo: %v", err)
	}
	if hasOption(dec.Options, optEcho) {
		t.Error("the consumed Echo option reached the application")
	}
	ws, ok := server.ReplayWindow()
	if !ok || ws.Highest != ex.Seq() {
		t.Fatalf("window after recovery %+v ok=%v, want lower limit %d", ws, ok, ex.Seq())
	}
	// The first request (lower PIV) is now a replay; later requests pass.
	if _, _, err := server.UnprotectRequest(first); !errors.Is(err, ErrReplay) {
		t.Fatalf("first request after recovery: %v, want ErrReplay", err)
	}
	if _, _, err := server.UnprotectRequest(second); !errors.Is(err, ErrReplay) {
		t.Fatalf("second request replayed: %v, want ErrReplay", err)
	}
	third, _, _ := client.ProtectRequest(getRequest())
	if _, _, err := server.UnprotectRequest(third); err != nil {
		t.Fatalf("third request: %v", err)
	}
}

func TestEchoRejected(t *testing.T) {
	tests := []struct {
		name string
		echo func(t *testing.T, clk *fakeClock, client, server *Context) []byte
	}{
		{"expired", func(t *testing.T, clk *fakeClock, client, server *Context) []byte {
			echo, _ := challenge(t, client, server)
			clk.Advance(DefaultEchoLifetime)
			return echo
		}},
		{"wrong value", func(t *testing.T, _ *fakeClock, client, server *Context) []byte {
			echo, _ := challenge(t, client, server)
			echo[0] ^= 0xff
			return echo
		}},
		{"value of another context", func(t *testing.T, clk *fakeClock, _, _ *Context) []byte {
			c2, s2 := echoServer(t, clk)
			echo, _ := challenge(t, c2, s2)
			return echo
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			client, server := echoServer(t, clk)
			echo := tt.echo(t, clk, client, server)
			m, _, _ := client.ProtectRequest(requestWithEcho(echo))
			_, ex, err := server.UnprotectRequest(m)
			if !errors.Is(err, ErrEchoRequired) || !ex.EchoChallenge() {
				t.Fatalf("error = %v, want a new Echo challenge", err)
			}
			if _, ok := server.ReplayWindow(); ok {
				t.Fatal("window established without a valid Echo")
			}
		})
	}
}

func TestEchoSingleUse(t *testing.T) {
	clk := newFakeClock()
	client, server := echoServer(t, clk)
	echo, _ := challenge(t, client, server)
	m, _, _ := client.ProtectRequest(requestWithEcho(echo))
	if _, _, err := server.UnprotectRequest(m); err != nil {
		t.Fatal(err)
	}
	// A restart again: the used value must not open the window a second time.
	server.recvMu.Lock()
	server.needsEcho = true
	server.recvMu.Unlock()
	m2, _, _ := client.ProtectRequest(requestWithEcho(echo))
	if _, _, err := server.UnprotectRequest(m2); !errors.Is(err, ErrEchoRequired) {
		t.Fatalf("reused Echo: %v, want ErrEchoRequired", err)
	}
}

func TestEchoChallengeNeedsVerifiedRequest(t *testing.T) {
	clk := newFakeClock()
	client, server := echoServer(t, clk)
	m, _, _ := client.ProtectRequest(getRequest())
	m.Payload[0] ^= 1
	if _, _, err := server.UnprotectRequest(m); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("forged request during recovery: %v, want ErrDecrypt (no Echo for unverified requests)", err)
	}
	if server.SenderSequence() != 1000 {
		t.Errorf("a forged request made the server spend a Partial IV")
	}
}

func TestEchoOptionsExclusive(t *testing.T) {
	_, err := NewContext(clientParams(t), WithEchoRecovery(), WithReplayWindow(WindowState{}))
	if !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("error = %v, want ErrInvalidParams", err)
	}
	if _, err := NewContext(clientParams(t), WithEchoLifetime(-time.Second)); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("negative lifetime: %v", err)
	}
}
