package oscore

import (
	"errors"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// badRequest is one way of breaking a protected request.
type badRequest struct {
	name     string
	mutate   func(t *testing.T, good Message) Message
	sentinel error
	code     codes.Code
	diag     string
}

func badRequests() []badRequest {
	return []badRequest{
		{"wrong key", func(t *testing.T, _ Message) Message {
			f := loadVectors(t)
			p := f.context(t, "C.1.1").params()
			p.MasterSecret = []byte("another master secret")
			c, err := NewContext(p, WithSenderSequence(100))
			if err != nil {
				t.Fatal(err)
			}
			m, _, err := c.ProtectRequest(getRequest())
			if err != nil {
				t.Fatal(err)
			}
			return m
		}, ErrDecrypt, codes.BadRequest, "Decryption failed"},
		{"tampered ciphertext", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Payload[0] ^= 0x01
			return m
		}, ErrDecrypt, codes.BadRequest, "Decryption failed"},
		{"tampered tag", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Payload[len(m.Payload)-1] ^= 0x80
			return m
		}, ErrDecrypt, codes.BadRequest, "Decryption failed"},
		{"tampered Partial IV", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x09, 0x65})
		}, ErrDecrypt, codes.BadRequest, "Decryption failed"},
		{"unknown kid", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x09, 0x64, 0x42})
		}, ErrContextNotFound, codes.Unauthorized, "Security context not found"},
		{"kid context of another context", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x19, 0x64, 0x02, 0xaa, 0xbb})
		}, ErrContextNotFound, codes.Unauthorized, "Security context not found"},
		{"kid too long", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x09, 0x64, 1, 2, 3, 4, 5, 6, 7, 8})
		}, ErrContextNotFound, codes.Unauthorized, "Security context not found"},
		{"missing OSCORE option", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Options = m.Options.Remove(OptionNumber)
			return m
		}, ErrNotProtected, codes.Unauthorized, "OSCORE required"},
		{"reserved flag bits", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x89, 0x64})
		}, ErrBadOption, codes.BadOption, "Failed to decode COSE"},
		{"reserved Partial IV length", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x0e, 1, 2, 3, 4, 5, 6})
		}, ErrBadOption, codes.BadOption, "Failed to decode COSE"},
		{"no kid", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x01, 0x64})
		}, ErrBadOption, codes.BadOption, "Failed to decode COSE"},
		{"no Partial IV", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{0x08})
		}, ErrBadOption, codes.BadOption, "Failed to decode COSE"},
		{"empty OSCORE option", func(t *testing.T, good Message) Message {
			return replaceOSCORE(good, []byte{})
		}, ErrBadOption, codes.BadOption, "Failed to decode COSE"},
		{"OSCORE option repeated", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Options = m.Options.Add(message.Option{ID: OptionNumber, Value: []byte{0x09, 0x64}})
			return m
		}, ErrMalformed, codes.BadOption, "Failed to decode COSE"},
		{"no payload", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Payload = nil
			return m
		}, ErrMalformed, codes.BadOption, "Failed to decode COSE"},
		{"payload too short for the tag", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Payload = m.Payload[:tagLen]
			return m
		}, ErrMalformed, codes.BadOption, "Failed to decode COSE"},
		{"outer code is a response code", func(t *testing.T, good Message) Message {
			m := cloneMessage(good)
			m.Code = codes.Changed
			return m
		}, ErrMalformed, codes.BadOption, "Failed to decode COSE"},
	}
}

// primedServer returns C.1 contexts where the server has accepted PIVs 98
// and 99, and a valid protected request with PIV 100.
func primedServer(t *testing.T) (client, server *Context, good Message) {
	t.Helper()
	client, server = pair(t, []ContextOption{WithSenderSequence(98)}, nil)
	for i := 0; i < 2; i++ {
		m, _, err := client.ProtectRequest(getRequest())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := server.UnprotectRequest(m); err != nil {
			t.Fatal(err)
		}
	}
	good, _, err := client.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	return client, server, good
}

func TestUnprotectRequestErrors(t *testing.T) {
	for _, tt := range badRequests() {
		t.Run(tt.name, func(t *testing.T) {
			_, server, good := primedServer(t)
			bad := tt.mutate(t, good)
			before, seqBefore := windowOf(server), server.SenderSequence()

			_, ex, err := server.UnprotectRequest(bad)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("error = %v, want %v", err, tt.sentinel)
			}
			var e *Error
			if !errors.As(err, &e) || e.Code() != tt.code || e.Diagnostic() != tt.diag {
				t.Fatalf("error %v does not carry %v %q", err, tt.code, tt.diag)
			}
			if ex != nil {
				t.Errorf("got an Exchange with the error")
			}
			if after := windowOf(server); after != before {
				t.Errorf("replay window moved: %+v -> %+v", before, after)
			}
			if server.SenderSequence() != seqBefore {
				t.Errorf("sender sequence moved")
			}
			// The untouched request still verifies: nothing was consumed.
			if _, _, err := server.UnprotectRequest(good); err != nil {
				t.Errorf("good request after %s: %v", tt.name, err)
			}
		})
	}
}

func TestKIDTooLongIsBoth(t *testing.T) {
	_, server, good := primedServer(t)
	_, _, err := server.UnprotectRequest(replaceOSCORE(good, []byte{0x09, 0x64, 1, 2, 3, 4, 5, 6, 7, 8}))
	if !errors.Is(err, ErrContextNotFound) || !errors.Is(err, ErrIDTooLong) {
		t.Fatalf("error = %v, want ErrContextNotFound and ErrIDTooLong", err)
	}
}

func TestReplayRejected(t *testing.T) {
	_, server, good := primedServer(t)
	if _, _, err := server.UnprotectRequest(good); err != nil {
		t.Fatal(err)
	}
	before := windowOf(server)
	_, _, err := server.UnprotectRequest(good)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: error = %v, want ErrReplay", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code() != codes.Unauthorized || e.Diagnostic() != "Replay detected" {
		t.Fatalf("replay error %v has wrong code", err)
	}
	if after := windowOf(server); after != before {
		t.Errorf("window moved on replay: %+v -> %+v", before, after)
	}
}

func TestReplayBelowWindow(t *testing.T) {
	client, server := pair(t, nil, nil)
	old, _, err := client.ProtectRequest(getRequest()) // PIV 0
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < DefaultReplayWindow+1; i++ {
		m, _, err := client.ProtectRequest(getRequest())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := server.UnprotectRequest(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := server.UnprotectRequest(old); !errors.Is(err, ErrReplay) {
		t.Fatalf("PIV 0 after 1..33: error = %v, want ErrReplay", err)
	}
}

// TestMalformedPlaintextConsumesPIV: a plaintext that decrypts but is not a
// request is rejected, and its Partial IV is used up (§8.2 step 6).
func TestMalformedPlaintextConsumesPIV(t *testing.T) {
	client, server := pair(t, []ContextOption{WithSenderSequence(7)}, nil)
	m, _, err := client.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	// Re-encrypt a 2.05 "request" under the same PIV with the client's key.
	var nonce [nonceLen]byte
	makeNonce(&nonce, &client.commonIV, client.senderID, []byte{7})
	m.Payload = client.sealer.Seal(nil, nonce[:], []byte{byte(codes.Content)}, appendAAD(nil, client.alg, client.senderID, []byte{7}))
	if _, _, err := server.UnprotectRequest(m); !errors.Is(err, ErrMalformed) {
		t.Fatalf("error = %v, want ErrMalformed", err)
	}
	if !windowOf(server).Seen(7) {
		t.Errorf("PIV 7 not consumed")
	}
}

func TestNestedOSCORERefused(t *testing.T) {
	client, _ := pair(t, nil, nil)
	m := getRequest()
	m.Options = append(m.Options, message.Option{ID: OptionNumber, Value: []byte{}})
	if _, _, err := client.ProtectRequest(m); !errors.Is(err, ErrNested) {
		t.Fatalf("error = %v, want ErrNested", err)
	}
	if client.SenderSequence() != 0 {
		t.Errorf("a refused message used a sequence number")
	}
}

func TestProtectRejectsWrongCodeClass(t *testing.T) {
	client, server := pair(t, nil, nil)
	if _, _, err := client.ProtectRequest(helloResponse()); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("ProtectRequest(2.05) = %v, want ErrInvalidMessage", err)
	}
	req, _, _ := client.ProtectRequest(getRequest())
	_, ex, err := server.UnprotectRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProtectResponse(getRequest(), ex, false); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("ProtectResponse(GET) = %v, want ErrInvalidMessage", err)
	}
}

func TestExchangeMismatch(t *testing.T) {
	client, server := pair(t, nil, nil)
	req, cex, _ := client.ProtectRequest(getRequest())
	_, sex, err := server.UnprotectRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProtectResponse(helloResponse(), cex, false); !errors.Is(err, ErrExchange) {
		t.Errorf("server with client exchange: %v", err)
	}
	if _, err := client.UnprotectResponse(Message{Code: codes.Changed}, sex); !errors.Is(err, ErrExchange) {
		t.Errorf("client with server exchange: %v", err)
	}
	if _, err := client.UnprotectResponse(Message{Code: codes.Changed}, nil); !errors.Is(err, ErrExchange) {
		t.Errorf("nil exchange: %v", err)
	}
}

func TestUnprotectResponseErrors(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(Message) Message
		sentinel error
	}{
		{"tampered ciphertext", func(m Message) Message { m = cloneMessage(m); m.Payload[2] ^= 1; return m }, ErrDecrypt},
		{"reserved bits", func(m Message) Message { return replaceOSCORE(m, []byte{0x20}) }, ErrBadOption},
		{"Partial IV added", func(m Message) Message { return replaceOSCORE(m, []byte{0x01, 0x05}) }, ErrDecrypt},
		{"short payload", func(m Message) Message { m = cloneMessage(m); m.Payload = m.Payload[:3]; return m }, ErrMalformed},
		{"unprotected 4.01", func(Message) Message {
			return Message{Code: codes.Unauthorized, Payload: []byte("Replay detected")}
		}, ErrNotProtected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t, nil, nil)
			req, cex, _ := client.ProtectRequest(getRequest())
			_, sex, err := server.UnprotectRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := server.ProtectResponse(helloResponse(), sex, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.UnprotectResponse(tt.mutate(resp), cex); !errors.Is(err, tt.sentinel) {
				t.Fatalf("error = %v, want %v", err, tt.sentinel)
			}
			// The exchange is unchanged: the genuine response still verifies once.
			if _, err := client.UnprotectResponse(resp, cex); err != nil {
				t.Fatalf("genuine response after failure: %v", err)
			}
			if _, err := client.UnprotectResponse(resp, cex); !errors.Is(err, ErrReplay) {
				t.Fatalf("second response: %v, want ErrReplay", err)
			}
		})
	}
}

func TestServerErrorDetails(t *testing.T) {
	client, _ := pair(t, nil, nil)
	_, ex, _ := client.ProtectRequest(getRequest())
	_, err := client.UnprotectResponse(Message{Code: codes.BadRequest, Payload: []byte("Decryption failed")}, ex)
	var se *ServerError
	if !errors.As(err, &se) || se.Code() != codes.BadRequest || se.Diagnostic() != "Decryption failed" {
		t.Fatalf("error = %v", err)
	}
}

func TestPlaintextTooLarge(t *testing.T) {
	client, _ := pair(t, nil, nil)
	m := getRequest()
	m.Code = codes.POST
	m.Payload = make([]byte, maxPlaintext)
	if _, _, err := client.ProtectRequest(m); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("error = %v, want ErrInvalidMessage", err)
	}
	m.Payload = make([]byte, maxPlaintext-16)
	if _, _, err := client.ProtectRequest(m); err != nil {
		t.Fatalf("largest message: %v", err)
	}
}
