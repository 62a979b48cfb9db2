package joinproxy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadHex reads a one-line hex vector from testdata.
func loadHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestDecodeAppendixA decodes the draft's two JPY messages (testdata/
// SOURCE.md) and re-encodes them byte for byte.
func TestDecodeAppendixA(t *testing.T) {
	header := mustHex("d01914bcc376a88ffecc50ca6017b0c1")
	for _, tc := range []struct {
		file        string
		contentLen  int
		first, last string // the bytes the draft prints around its ellipsis
		prefix      string // the draft's cbor-pretty head: array, header, content length
	}{
		{"appendix-a-request.hex", 427, "16fefd0000000000000000019e", "3d45", "8250d01914bcc376a88ffecc50ca6017b0c15901ab"},
		{"appendix-a-reply.hex", 60, "16fefd0000000000000000002f", "66c1", "8250d01914bcc376a88ffecc50ca6017b0c1583c"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := loadHex(t, tc.file)
			if !bytes.HasPrefix(b, mustHex(tc.prefix)) {
				t.Fatalf("vector does not start with the draft's %s", tc.prefix)
			}
			m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, "header", m.Header, header)
			if len(m.Content) != tc.contentLen {
				t.Fatalf("content %d bytes, want %d", len(m.Content), tc.contentLen)
			}
			if !bytes.HasPrefix(m.Content, mustHex(tc.first)) || !bytes.HasSuffix(m.Content, mustHex(tc.last)) {
				t.Fatalf("content %x…%x", m.Content[:13], m.Content[len(m.Content)-2:])
			}
			out, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, "re-encoded", out, b)
		})
	}
}

func TestDecodeAcceptsMoreElements(t *testing.T) {
	// [h'01', h'0203', 7, "x", [1]]: the registrar and the join proxy use
	// the first two elements ([JP] §"Processing by Registrar").
	b := mustHex("85" + "4101" + "420203" + "07" + "6178" + "8101")
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "header", m.Header, []byte{1})
	wantBytes(t, "content", m.Content, []byte{2, 3})
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "encoded", out, mustHex("824101420203"))
}

func TestDecodeRejects(t *testing.T) {
	big := bytes.Repeat([]byte{0xaa}, MaxContent+1)
	bigMsg, _ := (&encoder{}).raw(1, big)
	hugeHeader, _ := (&encoder{}).raw(MaxHeader+1, []byte{1})
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"map", mustHex("a0"), ErrMalformed},
		{"bstr", mustHex("4101"), ErrMalformed},
		{"one element", mustHex("814101"), ErrMalformed},
		{"no elements", mustHex("80"), ErrMalformed},
		{"header is text", mustHex("82" + "6161" + "4101"), ErrMalformed},
		{"content is text", mustHex("82" + "4101" + "6161"), ErrMalformed},
		{"content is int", mustHex("82" + "4101" + "01"), ErrMalformed},
		{"tagged header", mustHex("82" + "d8184101" + "4101"), ErrMalformed},
		{"null content", mustHex("82" + "4101" + "f6"), ErrMalformed},
		{"indefinite array", mustHex("9f" + "4101" + "4101" + "ff"), ErrMalformed},
		{"indefinite bstr", mustHex("82" + "5f4101ff" + "4101"), ErrMalformed},
		{"trailing bytes", mustHex("82" + "4101" + "4101" + "00"), ErrMalformed},
		{"truncated", mustHex("82" + "4101" + "4201"), ErrMalformed},
		{"bad third element", mustHex("83" + "4101" + "4101" + "1c"), ErrMalformed},
		{"content too large", bigMsg, ErrTooLarge},
		{"header too large", hugeHeader, ErrTooLarge},
		{"datagram too large", append(mustHex("83"+"4101"+"4101"+"5a00001000"), make([]byte, 4096)...), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodeBounds(t *testing.T) {
	for _, m := range []Message{
		{Header: make([]byte, MaxHeader+1)},
		{Content: make([]byte, MaxContent+1)},
	} {
		if _, err := m.Encode(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Encode(%d, %d bytes) = %v, want ErrTooLarge", len(m.Header), len(m.Content), err)
		}
	}
	// Empty and nil fields are empty byte strings, never null.
	out, err := Message{}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "empty message", out, mustHex("824040"))
	// The largest message is within MaxMessage.
	out, err = Message{Header: make([]byte, MaxHeader), Content: make([]byte, MaxContent)}.Encode()
	if err != nil || len(out) > MaxMessage {
		t.Fatalf("largest message: %d bytes, %v", len(out), err)
	}
}

// encoder builds test inputs by hand, including ones Encode refuses.
type encoder struct{}

func (encoder) raw(headerLen int, content []byte) ([]byte, error) {
	b := []byte{0x82}
	b = appendBstrHead(b, headerLen)
	b = append(b, make([]byte, headerLen)...)
	b = appendBstrHead(b, len(content))
	return append(b, content...), nil
}

func appendBstrHead(b []byte, n int) []byte {
	switch {
	case n < 24:
		return append(b, 0x40|byte(n))
	case n < 256:
		return append(b, 0x58, byte(n))
	default:
		return append(b, 0x59, byte(n>>8), byte(n))
	}
}

// FuzzJPY asserts that whatever Decode accepts re-encodes to a message
// that decodes to the same fields, that encoding is idempotent, and that a
// canonical input (two elements, preferred serialization) re-encodes to
// itself.
func FuzzJPY(f *testing.F) {
	for _, name := range []string{"appendix-a-request.hex", "appendix-a-reply.hex"} {
		f.Add(loadHex(f, name))
	}
	for _, s := range []string{
		"824040", "824101420203", "85410142020307617881" + "01",
		"82580141" + "4101", // non-preferred header length
		"9f41014101ff", "a0", "8141", "",
	} {
		f.Add(mustHex(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Decode(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode error %v wraps neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded message: %v", err)
		}
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("Decode(Encode(m)): %v", err)
		}
		if !bytes.Equal(m.Header, m2.Header) || !bytes.Equal(m.Content, m2.Content) {
			t.Fatalf("round trip changed the message: %x/%x -> %x/%x", m.Header, m.Content, m2.Header, m2.Content)
		}
		out2, err := m2.Encode()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Encode not idempotent: %x vs %x (%v)", out, out2, err)
		}
		if in[0] == 0x82 && len(out) == len(in) && !bytes.Equal(out, in) {
			t.Fatalf("canonical-length input %x re-encoded as %x", in, out)
		}
	})
}
