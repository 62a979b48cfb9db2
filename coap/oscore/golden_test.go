package oscore

import (
	"bytes"
	"testing"
)

// The tests in this file reproduce RFC 8613 Appendix C byte for byte (see
// testdata/README.md).

func TestContextDerivationVectors(t *testing.T) {
	f := loadVectors(t)
	if len(f.Contexts) != 6 {
		t.Fatalf("want 6 context vectors (C.1.1-C.3.2), got %d", len(f.Contexts))
	}
	for _, v := range f.Contexts {
		t.Run(v.Name, func(t *testing.T) {
			c := newVectorContext(t, v)
			checks := []struct {
				name      string
				got, want []byte
			}{
				{"info Sender Key", hkdfInfo(v.SenderID, c.idContext, c.hasIDContext, AESCCM16_64_128, "Key", 16), v.InfoSenderKey},
				{"info Recipient Key", hkdfInfo(v.RecipientID, c.idContext, c.hasIDContext, AESCCM16_64_128, "Key", 16), v.InfoRecipientKey},
				{"info Common IV", hkdfInfo(nil, c.idContext, c.hasIDContext, AESCCM16_64_128, "IV", 13), v.InfoCommonIV},
				{"Sender Key", c.SenderKey(), v.SenderKey},
				{"Recipient Key", c.RecipientKey(), v.RecipientKey},
				{"Common IV", c.CommonIV(), v.CommonIV},
				{"sender nonce", nonceFor(c, c.senderID, []byte{0}), v.SenderNonce0},
				{"recipient nonce", nonceFor(c, c.recipientID, []byte{0}), v.RecipientNonce0},
			}
			for _, ch := range checks {
				if !bytes.Equal(ch.got, ch.want) {
					t.Errorf("%s = %x, want %x", ch.name, ch.got, ch.want)
				}
			}
		})
	}
}

func nonceFor(c *Context, id, piv []byte) []byte {
	var n [nonceLen]byte
	makeNonce(&n, &c.commonIV, id, piv)
	return n[:]
}

func TestAADExample(t *testing.T) {
	for _, v := range loadVectors(t).AAD {
		t.Run(v.Name, func(t *testing.T) {
			arr := appendAADArray(nil, AESCCM16_64_128, v.RequestKID, v.RequestPIV)
			if !bytes.Equal(arr, v.AADArray) {
				t.Errorf("aad_array = %x, want %x", arr, v.AADArray)
			}
			if ext := appendBytes(nil, arr); !bytes.Equal(ext, v.ExternalAAD) {
				t.Errorf("external_aad = %x, want %x", ext, v.ExternalAAD)
			}
			if aad := appendAAD(nil, AESCCM16_64_128, v.RequestKID, v.RequestPIV); !bytes.Equal(aad, v.AAD) {
				t.Errorf("AAD = %x, want %x", aad, v.AAD)
			}
		})
	}
}

func TestOptionValueVectors(t *testing.T) {
	for _, v := range loadVectors(t).Options {
		t.Run(v.Name, func(t *testing.T) {
			got, err := DecodeOptionValue(v.Option)
			if err != nil {
				t.Fatalf("decode %x: %v", v.Option, err)
			}
			if want := v.value(); !got.Equal(want) {
				t.Errorf("decode %x = %+v, want %+v", v.Option, got, want)
			}
			enc, err := v.value().Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, v.Option) {
				t.Errorf("encode = %x, want %x", enc, v.Option)
			}
		})
	}
}

func TestProtectRequestVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Requests {
		t.Run(v.Name, func(t *testing.T) {
			opts := []ContextOption{WithSenderSequence(v.SenderSequence)}
			if v.SendKIDContext {
				opts = append(opts, WithKIDContextInRequests())
			}
			c := newVectorContext(t, f.context(t, v.Client), opts...)
			in := mustDecodeUDP(t, v.Unprotected)

			inner, _, err := split(in.Options, true)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := appendPlaintext(nil, in.Code, inner, in.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, v.Plaintext) {
				t.Errorf("plaintext = %x, want %x", pt, v.Plaintext)
			}

			out, ex, err := c.ProtectRequest(in)
			if err != nil {
				t.Fatalf("ProtectRequest: %v", err)
			}
			if got := encodeUDP(t, out); !bytes.Equal(got, v.Protected) {
				t.Errorf("protected = %x\n                want %x", got, v.Protected)
			}
			if !bytes.Equal(ex.PartialIV(), *v.PartialIV) || !bytes.Equal(ex.KID(), *v.KID) {
				t.Errorf("PIV/kid = %x/%x, want %x/%x", ex.PartialIV(), ex.KID(), *v.PartialIV, *v.KID)
			}
			if !bytes.Equal(ex.nonce[:], v.Nonce) {
				t.Errorf("nonce = %x, want %x", ex.nonce, v.Nonce)
			}
			if arr := appendAADArray(nil, c.alg, ex.kid, ex.piv); !bytes.Equal(arr, v.AADArray) {
				t.Errorf("aad_array = %x, want %x", arr, v.AADArray)
			}
			if aad := appendAAD(nil, c.alg, ex.kid, ex.piv); !bytes.Equal(aad, v.AAD) {
				t.Errorf("AAD = %x, want %x", aad, v.AAD)
			}
			if !bytes.Equal(out.Payload, v.Ciphertext) {
				t.Errorf("ciphertext = %x, want %x", out.Payload, v.Ciphertext)
			}
			if ov, _, _ := findOSCORE(out.Options); !bytes.Equal(ov, v.Option) {
				t.Errorf("OSCORE option = %x, want %x", ov, v.Option)
			}
			if c.SenderSequence() != v.SenderSequence+1 {
				t.Errorf("Sender Sequence Number = %d, want %d", c.SenderSequence(), v.SenderSequence+1)
			}
		})
	}
}

func TestUnprotectRequestVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Requests {
		t.Run(v.Name, func(t *testing.T) {
			c := newVectorContext(t, f.context(t, v.Server))
			in := mustDecodeUDP(t, v.Protected)
			out, ex, err := c.UnprotectRequest(in)
			if err != nil {
				t.Fatalf("UnprotectRequest: %v", err)
			}
			if got := encodeUDP(t, out); !bytes.Equal(got, v.Unprotected) {
				t.Errorf("unprotected = %x\n                  want %x", got, v.Unprotected)
			}
			if !bytes.Equal(ex.nonce[:], v.Nonce) {
				t.Errorf("nonce = %x, want %x", ex.nonce, v.Nonce)
			}
			kctx, has := ex.KIDContext()
			if has != (v.KIDContext != nil) || (has && !bytes.Equal(kctx, *v.KIDContext)) {
				t.Errorf("kid context = %x (%v), want %v", kctx, has, v.KIDContext)
			}
			if ex.Seq() != v.SenderSequence {
				t.Errorf("Seq = %d, want %d", ex.Seq(), v.SenderSequence)
			}
			ws, ok := c.ReplayWindow()
			if !ok || !ws.Seen(v.SenderSequence) {
				t.Errorf("replay window %+v (ok %v) does not hold %d", ws, ok, v.SenderSequence)
			}
		})
	}
}

func TestProtectResponseVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Responses {
		t.Run(v.Name, func(t *testing.T) {
			req := f.request(t, v.Request)
			c := newVectorContext(t, f.context(t, req.Server), WithSenderSequence(v.SenderSequence))
			_, ex, err := c.UnprotectRequest(mustDecodeUDP(t, req.Protected))
			if err != nil {
				t.Fatalf("UnprotectRequest(%s): %v", req.Name, err)
			}
			in := mustDecodeUDP(t, v.Unprotected)
			pt, err := appendPlaintext(nil, in.Code, in.Options, in.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, v.Plaintext) {
				t.Errorf("plaintext = %x, want %x", pt, v.Plaintext)
			}
			if aad := appendAAD(nil, c.alg, ex.kid, ex.piv); !bytes.Equal(aad, v.AAD) {
				t.Errorf("AAD = %x, want %x", aad, v.AAD)
			}
			wantNonce := ex.nonce[:]
			if v.WithPartialIV {
				wantNonce = nonceFor(c, c.senderID, *v.PartialIV)
			}
			if !bytes.Equal(wantNonce, v.Nonce) {
				t.Errorf("nonce = %x, want %x", wantNonce, v.Nonce)
			}
			out, err := c.ProtectResponse(in, ex, v.WithPartialIV)
			if err != nil {
				t.Fatalf("ProtectResponse: %v", err)
			}
			if got := encodeUDP(t, out); !bytes.Equal(got, v.Protected) {
				t.Errorf("protected = %x\n                want %x", got, v.Protected)
			}
			if ov, _, _ := findOSCORE(out.Options); !bytes.Equal(ov, v.Option) {
				t.Errorf("OSCORE option = %x, want %x", ov, v.Option)
			}
			if !bytes.Equal(out.Payload, v.Ciphertext) {
				t.Errorf("ciphertext = %x, want %x", out.Payload, v.Ciphertext)
			}
		})
	}
}

func TestUnprotectResponseVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Responses {
		t.Run(v.Name, func(t *testing.T) {
			req := f.request(t, v.Request)
			c := newVectorContext(t, f.context(t, req.Client), WithSenderSequence(req.SenderSequence))
			_, ex, err := c.ProtectRequest(mustDecodeUDP(t, req.Unprotected))
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.UnprotectResponse(mustDecodeUDP(t, v.Protected), ex)
			if err != nil {
				t.Fatalf("UnprotectResponse: %v", err)
			}
			if got := encodeUDP(t, out); !bytes.Equal(got, v.Unprotected) {
				t.Errorf("unprotected = %x\n                  want %x", got, v.Unprotected)
			}
		})
	}
}
