package btp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// reassemblyInput encodes a fuzz case: four octets of session
// configuration, then packets, each preceded by an octet whose low seven
// bits are its length and whose high bit says "acknowledge everything
// after this packet" (so the peer's later acks can be valid).
func reassemblyInput(window, maxHi, maxLo uint8, central bool, packets ...[]byte) []byte {
	b := []byte{window, maxHi, maxLo, 0}
	if central {
		b[3] = 1
	}
	for _, p := range packets {
		b = append(b, byte(len(p))|0x80)
		b = append(b, p...)
	}
	return b
}

func seedReassembly(f *testing.F) {
	type vec struct{ Hex string }
	var file struct{ Vectors []vec }
	raw, err := os.ReadFile("testdata/segments.json")
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		f.Fatal(err)
	}
	var all [][]byte
	for _, v := range file.Vectors {
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 128 {
			all = append(all, b)
		}
		f.Add(reassemblyInput(6, 4, 0, true, b))
		f.Add(reassemblyInput(6, 4, 0, false, b))
	}
	// CHIP's multi-packet sequences (TestBtpEngine.cpp), in order and not.
	three := [][]byte{{0x01, 0x01, 0x03, 0x00, 0xfd}, {0x02, 0x02, 0xfe}, {0x04, 0x03, 0xff}}
	f.Add(reassemblyInput(6, 4, 0, true, three...))
	f.Add(reassemblyInput(6, 4, 0, true, three[0], three[2], three[1]))
	f.Add(reassemblyInput(6, 4, 0, true, three[0], three[0]))
	f.Add(reassemblyInput(2, 0, 2, true, three...))
	f.Add(reassemblyInput(255, 255, 255, true, all...))
}

// FuzzReassembly feeds arbitrary packet sequences to a session. It must
// not panic; once it reports an error it is not fed again; every message
// it completes is exactly the concatenation of the payloads it accepted
// since the beginning segment; buffers never exceed the limit; windows
// stay within bounds.
func FuzzReassembly(f *testing.F) {
	seedReassembly(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 4 {
			return
		}
		window := MinWindow + int(in[0])%(256-MinWindow)
		maxMsg := 1 + (int(in[1])<<8|int(in[2]))%2048
		s := newSession(in[3]&1 == 1, window, 127, maxMsg)
		var shadow []byte
		in = in[4:]
		for len(in) > 0 {
			n := int(in[0] & 0x7f)
			ackAfter := in[0]&0x80 != 0
			in = in[1:]
			if n > len(in) {
				n = len(in)
			}
			p := in[:n]
			in = in[n:]
			r, err := s.receive(p)
			if err != nil {
				var known bool
				for _, e := range []error{ErrSegmentTooLarge, ErrMalformed, ErrAck, ErrSequence, ErrWindow, ErrReassembly, ErrMessageTooLarge} {
					known = known || errors.Is(err, e)
				}
				if !known {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			seg, _ := DecodeSegment(p)
			if seg.Flags&FlagBegin != 0 {
				shadow = append([]byte(nil), seg.Payload...)
			} else if seg.IsData() {
				shadow = append(shadow, seg.Payload...)
			}
			if r.msg != nil {
				if !bytes.Equal(r.msg, shadow) || len(r.msg) > maxMsg {
					t.Fatalf("message %x, payloads %x, limit %d", r.msg, shadow, maxMsg)
				}
				shadow = nil
			}
			if cap(s.rxBuf) > maxMsg || s.rxUnacked > window || s.txUnacked < 0 || s.txUnacked > window {
				t.Fatalf("bounds: buffer cap %d/%d, rx unacked %d, tx unacked %d, window %d", cap(s.rxBuf), maxMsg, s.rxUnacked, s.txUnacked, window)
			}
			if ackAfter && s.owesAck() && s.remoteWindow() >= 1 {
				if a := s.standaloneAck(nil); len(a) != 3 {
					t.Fatalf("stand-alone ack %x", a)
				}
			}
		}
	})
}
