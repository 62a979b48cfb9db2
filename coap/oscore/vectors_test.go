package oscore

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// hexBytes is a hex string in the vectors file.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

type contextVector struct {
	Name             string    `json:"name"`
	Role             string    `json:"role"`
	MasterSecret     hexBytes  `json:"master_secret"`
	MasterSalt       hexBytes  `json:"master_salt"`
	IDContext        *hexBytes `json:"id_context"`
	SenderID         hexBytes  `json:"sender_id"`
	RecipientID      hexBytes  `json:"recipient_id"`
	InfoSenderKey    hexBytes  `json:"info_sender_key"`
	InfoRecipientKey hexBytes  `json:"info_recipient_key"`
	InfoCommonIV     hexBytes  `json:"info_common_iv"`
	SenderKey        hexBytes  `json:"sender_key"`
	RecipientKey     hexBytes  `json:"recipient_key"`
	CommonIV         hexBytes  `json:"common_iv"`
	SenderNonce0     hexBytes  `json:"sender_nonce_piv0"`
	RecipientNonce0  hexBytes  `json:"recipient_nonce_piv0"`
}

func (v contextVector) params() Params {
	p := Params{
		MasterSecret: v.MasterSecret,
		MasterSalt:   v.MasterSalt,
		SenderID:     v.SenderID,
		RecipientID:  v.RecipientID,
	}
	if v.IDContext != nil {
		p.IDContext, p.HasIDContext = *v.IDContext, true
	}
	return p
}

type messageVector struct {
	Name           string    `json:"name"`
	Client         string    `json:"client"`
	Server         string    `json:"server"`
	Request        string    `json:"request"`
	SenderSequence uint64    `json:"sender_sequence"`
	SendKIDContext bool      `json:"send_kid_context"`
	WithPartialIV  bool      `json:"with_partial_iv"`
	Unprotected    hexBytes  `json:"unprotected"`
	PartialIV      *hexBytes `json:"partial_iv"`
	KID            *hexBytes `json:"kid"`
	KIDContext     *hexBytes `json:"kid_context"`
	AADArray       hexBytes  `json:"aad_array"`
	AAD            hexBytes  `json:"aad"`
	Plaintext      hexBytes  `json:"plaintext"`
	Nonce          hexBytes  `json:"nonce"`
	Option         hexBytes  `json:"option"`
	Ciphertext     hexBytes  `json:"ciphertext"`
	Protected      hexBytes  `json:"protected"`
}

type aadVector struct {
	Name        string   `json:"name"`
	RequestKID  hexBytes `json:"request_kid"`
	RequestPIV  hexBytes `json:"request_piv"`
	AADArray    hexBytes `json:"aad_array"`
	ExternalAAD hexBytes `json:"external_aad"`
	AAD         hexBytes `json:"aad"`
}

type optionVector struct {
	Name       string    `json:"name"`
	Option     hexBytes  `json:"option"`
	PartialIV  *hexBytes `json:"partial_iv"`
	KID        *hexBytes `json:"kid"`
	KIDContext *hexBytes `json:"kid_context"`
}

func (v optionVector) value() OptionValue {
	var o OptionValue
	if v.PartialIV != nil {
		o.PartialIV = *v.PartialIV
	}
	if v.KID != nil {
		o.KID, o.HasKID = *v.KID, true
	}
	if v.KIDContext != nil {
		o.KIDContext, o.HasKIDContext = *v.KIDContext, true
	}
	return o
}

type vectorFile struct {
	Contexts  []contextVector `json:"contexts"`
	Requests  []messageVector `json:"requests"`
	Responses []messageVector `json:"responses"`
	AAD       []aadVector     `json:"aad_examples"`
	Options   []optionVector  `json:"option_examples"`
}

func (f *vectorFile) context(tb testing.TB, name string) contextVector {
	tb.Helper()
	for _, c := range f.Contexts {
		if c.Name == name {
			return c
		}
	}
	tb.Fatalf("no context vector %q", name)
	return contextVector{}
}

func (f *vectorFile) request(tb testing.TB, name string) messageVector {
	tb.Helper()
	for _, r := range f.Requests {
		if r.Name == name {
			return r
		}
	}
	tb.Fatalf("no request vector %q", name)
	return messageVector{}
}

func loadVectors(tb testing.TB) *vectorFile {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc8613-appendix-c.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatal(err)
	}
	return &f
}

// decodeUDP decodes a whole CoAP-over-UDP message (RFC 7252 §3).
func decodeUDP(b []byte) (Message, error) {
	for n := 16; ; n *= 4 {
		m := Message{Options: make(message.Options, 0, n)}
		_, err := coder.DefaultCoder.Decode(b, &m)
		if errors.Is(err, message.ErrOptionsTooSmall) && n < len(b) {
			continue
		}
		return m, err
	}
}

func mustDecodeUDP(tb testing.TB, b []byte) Message {
	tb.Helper()
	m, err := decodeUDP(b)
	if err != nil {
		tb.Fatalf("decode %x: %v", b, err)
	}
	return m
}

func encodeUDP(tb testing.TB, m Message) []byte {
	tb.Helper()
	size, err := coder.DefaultCoder.Size(m)
	if err != nil {
		tb.Fatalf("size: %v", err)
	}
	b := make([]byte, size)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return b
}

func newVectorContext(tb testing.TB, v contextVector, opts ...ContextOption) *Context {
	tb.Helper()
	c, err := NewContext(v.params(), opts...)
	if err != nil {
		tb.Fatalf("NewContext(%s): %v", v.Name, err)
	}
	return c
}
