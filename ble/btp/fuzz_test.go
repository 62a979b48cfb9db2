package btp_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// FuzzDecodeSegment: whatever decodes re-encodes to the same octets (no
// two encodings of one segment), and whatever fails is ErrMalformed.
func FuzzDecodeSegment(f *testing.F) {
	for _, v := range segmentVectors(f) {
		f.Add(unhex(f, v.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := btp.DecodeSegment(b)
		if err != nil {
			if !errors.Is(err, btp.ErrMalformed) {
				t.Fatalf("decode error %v is not ErrMalformed", err)
			}
			return
		}
		if seg.HeaderLen()+len(seg.Payload) != len(b) {
			t.Fatalf("header %d + payload %d != %d", seg.HeaderLen(), len(seg.Payload), len(b))
		}
		enc, err := seg.AppendBinary(nil)
		if err != nil {
			t.Fatalf("re-encode of %x: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("decoded %x, re-encoded %x", b, enc)
		}
	})
}

// FuzzDecodeHandshake: requests and responses that decode re-encode to
// the same octets; failures are ErrMalformed or ErrVersion.
func FuzzDecodeHandshake(f *testing.F) {
	reqs, resps := handshakeVectors(f)
	for _, v := range reqs {
		f.Add(unhex(f, v.Hex))
	}
	for _, v := range resps {
		f.Add(unhex(f, v.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := btp.DecodeHandshakeRequest(b); err == nil {
			enc, err := r.MarshalBinary()
			if err != nil || !bytes.Equal(enc, b) {
				t.Fatalf("request %x re-encoded %x, %v", b, enc, err)
			}
		} else if !errors.Is(err, btp.ErrMalformed) && !errors.Is(err, btp.ErrVersion) {
			t.Fatalf("request error %v", err)
		}
		if r, err := btp.DecodeHandshakeResponse(b); err == nil {
			enc, err := r.MarshalBinary()
			if err != nil || !bytes.Equal(enc, b) {
				t.Fatalf("response %x re-encoded %x, %v", b, enc, err)
			}
		} else if !errors.Is(err, btp.ErrMalformed) {
			t.Fatalf("response error %v", err)
		}
	})
}
