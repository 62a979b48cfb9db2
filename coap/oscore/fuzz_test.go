package oscore

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
)

// FuzzOptionDecode: a value that decodes re-encodes to the same bytes, so
// no two encodings share a meaning (§6.1); a value that does not decode is
// ErrBadOption.
func FuzzOptionDecode(f *testing.F) {
	v := loadVectors(f)
	for _, o := range v.Options {
		f.Add([]byte(o.Option))
	}
	for _, r := range v.Requests {
		f.Add([]byte(r.Option))
	}
	for _, r := range v.Responses {
		f.Add([]byte(r.Option))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ov, err := DecodeOptionValue(b)
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v is not ErrBadOption", err)
			}
			return
		}
		enc, err := ov.Encode()
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip %x -> %+v -> %x", b, ov, enc)
		}
	})
}

// FuzzPlaintext: a plaintext that parses re-encodes to the same bytes.
func FuzzPlaintext(f *testing.F) {
	v := loadVectors(f)
	for _, r := range slices.Concat(v.Requests, v.Responses) {
		f.Add([]byte(r.Plaintext))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, opts, payload, err := parsePlaintext(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		back, err := appendPlaintext(nil, code, opts, payload)
		if err != nil {
			t.Fatalf("parsed plaintext does not encode: %v", err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("round trip %x -> %x", b, back)
		}
	})
}

// fuzzPairs are the (server, client) contexts of C.4, C.5 and C.6; the
// first input byte selects one.
var fuzzPairs = [][2]string{{"C.1.2", "C.1.1"}, {"C.2.2", "C.2.1"}, {"C.3.2", "C.3.1"}}

// FuzzUnprotect feeds whole CoAP messages to UnprotectRequest. It must not
// panic, must fail only with the package's errors, and anything it accepts
// must be exactly what the legitimate client produces for the decrypted
// request under the same Partial IV: same ciphertext, same OSCORE option,
// same Class U options and header (non-malleability). Outer Class E
// options and the outer Code are discarded by design (§8.2 step 1) and are
// not compared.
func FuzzUnprotect(f *testing.F) {
	v := loadVectors(f)
	for i, r := range v.Requests {
		f.Add(append([]byte{byte(i)}, r.Protected...))
		f.Add(append([]byte{byte(i)}, r.Unprotected...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		names := fuzzPairs[int(data[0])%len(fuzzPairs)]
		in, err := decodeUDP(data[1:])
		if err != nil {
			return
		}
		server := newVectorContext(t, v.context(t, names[0]))
		dec, ex, err := server.UnprotectRequest(cloneMessage(in))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an OSCORE verification error", err)
			}
			return
		}
		opts := []ContextOption{WithSenderSequence(ex.Seq())}
		if _, has := ex.KIDContext(); has {
			opts = append(opts, WithKIDContextInRequests())
		}
		client := newVectorContext(t, v.context(t, names[1]), opts...)
		out, _, err := client.ProtectRequest(dec)
		if err != nil {
			t.Fatalf("accepted request does not re-protect: %v", err)
		}
		if !bytes.Equal(out.Payload, in.Payload) {
			t.Fatalf("ciphertext differs:\n in  %x\n out %x", in.Payload, out.Payload)
		}
		if !sameOptions(classU(out.Options), classU(in.Options)) {
			t.Fatalf("Class U options differ:\n in  %v\n out %v", in.Options, out.Options)
		}
		if out.Type != in.Type || out.MessageID != in.MessageID || !bytes.Equal(out.Token, in.Token) {
			t.Fatal("header fields differ")
		}
	})
}

// FuzzUnprotectResponse feeds responses to the C.4 request to the client.
// Anything accepted must be what the server produces for the decrypted
// response (C.7/C.8 style), byte for byte in ciphertext and OSCORE option.
func FuzzUnprotectResponse(f *testing.F) {
	v := loadVectors(f)
	for _, r := range v.Responses {
		f.Add([]byte(r.Protected))
		f.Add([]byte(r.Unprotected))
	}
	req := v.request(f, "C.4")
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := decodeUDP(data)
		if err != nil {
			return
		}
		client := newVectorContext(t, v.context(t, "C.1.1"), WithSenderSequence(req.SenderSequence))
		_, cex, err := client.ProtectRequest(mustDecodeUDP(t, req.Unprotected))
		if err != nil {
			t.Fatal(err)
		}
		dec, err := client.UnprotectResponse(cloneMessage(in), cex)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an OSCORE verification error", err)
			}
			return
		}
		optVal, _, _ := findOSCORE(in.Options)
		ov, _ := DecodeOptionValue(optVal)
		sopts := []ContextOption{}
		if ov.PartialIV != nil {
			sopts = append(sopts, WithSenderSequence(decodePIV(ov.PartialIV)))
		}
		server := newVectorContext(t, v.context(t, "C.1.2"), sopts...)
		_, sex, err := server.UnprotectRequest(mustDecodeUDP(t, req.Protected))
		if err != nil {
			t.Fatal(err)
		}
		out, err := server.ProtectResponse(dec, sex, ov.PartialIV != nil)
		if err != nil {
			t.Fatalf("accepted response does not re-protect: %v", err)
		}
		if !bytes.Equal(out.Payload, in.Payload) {
			t.Fatalf("ciphertext differs:\n in  %x\n out %x", in.Payload, out.Payload)
		}
		outVal, _, _ := findOSCORE(out.Options)
		if !bytes.Equal(outVal, optVal) {
			t.Fatalf("OSCORE option %x, want %x", outVal, optVal)
		}
	})
}

func classU(opts message.Options) message.Options {
	var out message.Options
	for _, o := range opts {
		if classUOnly(o.ID) {
			out = append(out, o)
		}
	}
	return out
}

func sameOptions(a, b message.Options) bool {
	return slices.EqualFunc(a, b, func(x, y message.Option) bool { return x.ID == y.ID && bytes.Equal(x.Value, y.Value) })
}
