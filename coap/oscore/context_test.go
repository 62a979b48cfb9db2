package oscore

import (
	"bytes"
	"errors"
	"testing"
)

func TestNewContextValidation(t *testing.T) {
	base := func(t *testing.T) Params { return clientParams(t) }
	tests := []struct {
		name     string
		mutate   func(*Params)
		opts     []ContextOption
		sentinel error
	}{
		{"AEAD other than 10", func(p *Params) { p.AEAD = 1 }, nil, ErrUnsupportedAlgorithm},
		{"HKDF other than SHA-256", func(p *Params) { p.HKDF = -11 }, nil, ErrUnsupportedAlgorithm},
		{"empty Master Secret", func(p *Params) { p.MasterSecret = nil }, nil, ErrInvalidParams},
		{"Sender ID of 8 bytes", func(p *Params) { p.SenderID = make([]byte, 8) }, nil, ErrIDTooLong},
		{"Recipient ID of 8 bytes", func(p *Params) { p.RecipientID = make([]byte, 8) }, nil, ErrIDTooLong},
		{"Sender ID equals Recipient ID", func(p *Params) { p.SenderID = []byte{1} }, nil, ErrInvalidParams},
		{"kid context without ID Context", nil, []ContextOption{WithKIDContextInRequests()}, ErrInvalidParams},
		{"window size 0", nil, []ContextOption{WithReplayWindowSize(0)}, ErrInvalidParams},
		{"window size 65", nil, []ContextOption{WithReplayWindowSize(65)}, ErrInvalidParams},
		{"K = 0", nil, []ContextOption{WithPersistInterval(0, 1)}, ErrInvalidParams},
		{"nil store", nil, []ContextOption{WithSequenceStore(nil)}, ErrInvalidParams},
		{"nil clock", nil, []ContextOption{WithClock(nil)}, ErrInvalidParams},
		{"nil rand", nil, []ContextOption{WithRand(nil)}, ErrInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base(t)
			if tt.mutate != nil {
				tt.mutate(&p)
			}
			if _, err := NewContext(p, tt.opts...); !errors.Is(err, tt.sentinel) {
				t.Fatalf("error = %v, want %v", err, tt.sentinel)
			}
		})
	}
}

func TestSevenByteIDs(t *testing.T) {
	p := clientParams(t)
	p.SenderID = []byte{1, 2, 3, 4, 5, 6, 7}
	p.RecipientID = []byte{7, 6, 5, 4, 3, 2, 1}
	c, err := NewContext(p)
	if err != nil {
		t.Fatal(err)
	}
	q := p
	q.SenderID, q.RecipientID = p.RecipientID, p.SenderID
	s, err := NewContext(q)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := c.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UnprotectRequest(m); err != nil {
		t.Fatalf("7-byte kid: %v", err)
	}
}

// TestIDContextPresence: an empty ID Context (empty bstr) and no ID Context (nil)
// derive different keys (§3.2.1).
func TestIDContextPresence(t *testing.T) {
	p := clientParams(t)
	absent, err := NewContext(p)
	if err != nil {
		t.Fatal(err)
	}
	p.HasIDContext = true
	empty, err := NewContext(p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(absent.SenderKey(), empty.SenderKey()) || bytes.Equal(absent.CommonIV(), empty.CommonIV()) {
		t.Fatal("empty and absent ID Context derive the same keys")
	}
	if _, has := absent.IDContext(); has {
		t.Error("absent ID Context reported present")
	}
	if idc, has := empty.IDContext(); !has || len(idc) != 0 {
		t.Error("empty ID Context not reported")
	}
}

func TestStateID(t *testing.T) {
	f := loadVectors(t)
	tests := []struct{ ctx, want string }{
		{"C.1.1", "s=;r=01"},
		{"C.2.2", "s=01;r=00"},
		{"C.3.1", "c=37cbf3210017a2d3;s=;r=01"},
	}
	for _, tt := range tests {
		if got := newVectorContext(t, f.context(t, tt.ctx)).StateID(); got != tt.want {
			t.Errorf("%s: StateID = %q, want %q", tt.ctx, got, tt.want)
		}
	}
}

func TestAccessorsCopy(t *testing.T) {
	c, _ := pair(t, nil, nil)
	k := c.SenderKey()
	k[0] ^= 0xff
	if bytes.Equal(k, c.SenderKey()) {
		t.Fatal("SenderKey exposes internal state")
	}
	r := c.RecipientID()
	r[0] = 0x42
	if c.RecipientID()[0] != 0x01 {
		t.Fatal("RecipientID exposes internal state")
	}
}

func TestReplayWindowRestore(t *testing.T) {
	client, server := pair(t, nil, nil)
	var msgs []Message
	for i := 0; i < 6; i++ {
		m, _, _ := client.ProtectRequest(getRequest())
		msgs = append(msgs, m)
	}
	for _, i := range []int{0, 2, 5} {
		if _, _, err := server.UnprotectRequest(msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	ws, ok := server.ReplayWindow()
	if !ok {
		t.Fatal("window not ok")
	}
	f := loadVectors(t)
	restored := newVectorContext(t, f.context(t, "C.1.2"), WithReplayWindow(ws))
	for i, m := range msgs {
		_, _, err := restored.UnprotectRequest(m)
		seen := i == 0 || i == 2 || i == 5
		if seen != errors.Is(err, ErrReplay) || (!seen && err != nil) {
			t.Errorf("message %d after restore: %v", i, err)
		}
	}
}
