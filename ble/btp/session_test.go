package btp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func h(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// CHIP's BtpEngine tests feed these packets to a fresh central-role engine
// (src/ble/tests/TestBtpEngine.cpp): sequence numbers start at 1 because
// the handshake response was the peripheral's packet 0.
func TestSessionCHIPVectors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		packets []string
		want    string
		ack     string // the stand-alone ack that follows (EncodeStandAloneAck)
	}{
		{"one packet", []string{"05 01 01 00 ff"}, "ff", "08 01 00"},
		{"two packets", []string{"01 01 02 00 fe", "04 02 ff"}, "feff", "08 02 00"},
		{"three packets", []string{"01 01 03 00 fd", "02 02 fe", "04 03 ff"}, "fdfeff", "08 03 00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(true, DefaultWindow, MinSegmentSize, DefaultMaxMessage)
			var got []byte
			for i, p := range tc.packets {
				r, err := s.receive(h(t, p))
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if (r.msg != nil) != (i == len(tc.packets)-1) {
					t.Fatalf("packet %d completed a message: %v", i, r.msg != nil)
				}
				got = r.msg
			}
			if !bytes.Equal(got, h(t, tc.want)) {
				t.Fatalf("message %x, want %s", got, tc.want)
			}
			if ack := s.standaloneAck(nil); !bytes.Equal(ack, h(t, tc.ack)) {
				t.Fatalf("stand-alone ack %x, want %s", ack, tc.ack)
			}
		})
	}
}

// TestSessionSegmentation checks the segments a session produces: CHIP's
// HandleCharacteristicSendThreePacket sends 40 octets in 20-octet segments
// as 4+16, 2+18 and 2+6 octets (header+payload) when no ack rides along.
func TestSessionSegmentation(t *testing.T) {
	s := newSession(false, DefaultWindow, MinSegmentSize, DefaultMaxMessage)
	s.txUnacked = 0 // pretend the handshake response was acknowledged
	msg := make([]byte, 40)
	for i := range msg {
		msg[i] = byte(i)
	}
	s.start(msg)
	var lens []int
	var flags []Flags
	var got []byte
	for s.sending() {
		if !s.canSendData() {
			t.Fatalf("window closed after %d segments", len(lens))
		}
		b, acked, _ := s.nextData(nil)
		if acked {
			t.Fatal("ack piggybacked with nothing owed")
		}
		seg, err := DecodeSegment(b)
		if err != nil {
			t.Fatal(err)
		}
		lens = append(lens, len(b))
		flags = append(flags, seg.Flags)
		got = append(got, seg.Payload...)
	}
	if want := []int{20, 20, 8}; !equalInts(lens, want) {
		t.Fatalf("segment lengths %v, want %v", lens, want)
	}
	if want := []Flags{FlagBegin, FlagContinue, FlagContinue | FlagEnd}; !equalFlags(flags, want) {
		t.Fatalf("flags %v, want %v (middle segments carry C: thread-ble.md §4.1, MCLI bug)", flags, want)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("payloads do not reassemble the message")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalFlags(a, b []Flags) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSessionProtocolErrors feeds a fresh central-role session (expecting
// sequence 1, owing the ack of 0, nothing in flight) bad packet sequences.
func TestSessionProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		window  int
		maxMsg  int
		packets []string
		want    error
	}{
		{"duplicate", 6, 1024, []string{"01 01 03 00 aa", "01 01 03 00 aa"}, ErrSequence},
		{"duplicate of a whole message", 6, 1024, []string{"05 01 01 00 aa", "05 01 01 00 aa"}, ErrSequence},
		{"out of order", 6, 1024, []string{"01 01 03 00 aa", "04 03 bb"}, ErrSequence},
		{"replay of the handshake response's number", 6, 1024, []string{"05 00 01 00 aa"}, ErrSequence},
		{"begin inside a message", 6, 1024, []string{"01 01 03 00 aa", "01 02 03 00 bb"}, ErrReassembly},
		{"continue without begin", 6, 1024, []string{"02 01 aa"}, ErrReassembly},
		{"end without begin", 6, 1024, []string{"04 01 aa"}, ErrReassembly},
		{"overrun", 6, 1024, []string{"01 01 02 00 aa", "04 02 bb cc"}, ErrReassembly},
		{"missing data at end", 6, 1024, []string{"01 01 04 00 aa", "06 02 bb"}, ErrReassembly},
		{"over the reassembly limit", 6, 1024, []string{"01 01 01 04 aa"}, ErrMessageTooLarge},
		{"announced 65535", 6, 1024, []string{"01 01 ff ff aa"}, ErrMessageTooLarge},
		{"window overflow", 3, 1024, []string{"01 01 09 00 aa", "02 02 bb", "02 03 cc"}, ErrWindow},
		{"ack with nothing in flight", 6, 1024, []string{"08 00 01"}, ErrAck},
		{"segment longer than negotiated", 6, 1024, []string{"01 01 40 00" + strings.Repeat(" aa", 17)}, ErrSegmentTooLarge},
		{"malformed", 6, 1024, []string{"03 01 02 00 aa"}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(true, tc.window, MinSegmentSize, tc.maxMsg)
			var err error
			for i, p := range tc.packets {
				if _, err = s.receive(h(t, p)); err != nil {
					if i != len(tc.packets)-1 {
						t.Fatalf("packet %d failed early: %v", i, err)
					}
					break
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// An announced length over the limit is refused before a buffer exists.
func TestSessionReassemblyLimitAllocatesNothing(t *testing.T) {
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		s := newSession(true, DefaultWindow, MinSegmentSize, 100)
		if _, err := s.receive([]byte{0x01, 0x01, 0xff, 0xff, 0xaa}); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatal(err)
		}
		if s.rxBuf != nil || s.rxOn {
			t.Fatal("reassembly state after refusal")
		}
	}
	runtime.ReadMemStats(&after)
	// A session and an error, not 64 KiB.
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2048 {
		t.Fatalf("%d bytes allocated per refused message", per)
	}
}

// The peripheral's handshake response is packet 0, in flight until the
// central acknowledges it.
func TestSessionAcknowledgements(t *testing.T) {
	p := newSession(false, 4, 64, 1024)
	if p.txUnacked != 1 || p.remoteWindow() != 3 {
		t.Fatalf("initial in flight %d", p.txUnacked)
	}
	// Ack 1 is not in flight (only 0 is).
	if _, err := p.receive(h(t, "08 01 00")); !errors.Is(err, ErrAck) {
		t.Fatalf("ack of unsent packet: %v", err)
	}
	p = newSession(false, 4, 64, 1024)
	r, err := p.receive(h(t, "08 00 00"))
	if err != nil || !r.acked || p.txUnacked != 0 || !p.owesAck() {
		t.Fatalf("ack of 0: %+v %v, in flight %d", r, err, p.txUnacked)
	}
	// Send three segments, then an ack of the second leaves one in flight.
	p.start(bytes.Repeat([]byte{7}, 150))
	for range 3 {
		if !p.canSendData() {
			t.Fatal("window closed")
		}
		p.nextData(nil)
	}
	if p.txUnacked != 3 || p.txNext != 4 {
		t.Fatalf("in flight %d, next %d", p.txUnacked, p.txNext)
	}
	if _, err := p.receive(h(t, "08 02 01")); err != nil {
		t.Fatal(err)
	}
	if p.txUnacked != 1 {
		t.Fatalf("in flight %d after ack 2", p.txUnacked)
	}
	// An old ack is invalid now.
	if _, err := p.receive(h(t, "08 01 02")); !errors.Is(err, ErrAck) {
		t.Fatalf("stale ack: %v", err)
	}
}

// A data packet without an ack never takes the peer's last window slot;
// one that carries an ack may.
func TestSessionWindowThreshold(t *testing.T) {
	s := newSession(false, 3, 64, 1024)
	s.txUnacked = 0
	s.start(bytes.Repeat([]byte{1}, 500))
	sent := 0
	for s.canSendData() {
		s.nextData(nil)
		sent++
	}
	if sent != 2 || s.remoteWindow() != 1 {
		t.Fatalf("sent %d without acks, remote window %d", sent, s.remoteWindow())
	}
	// Receiving a packet (owing an ack) unlocks the last slot.
	if _, err := s.receive(h(t, "05 00 01 00 aa")); err != nil {
		t.Fatal(err)
	}
	if !s.canSendData() {
		t.Fatal("cannot piggyback an ack into the last slot")
	}
	b, acked, _ := s.nextData(nil)
	if !acked || Flags(b[0])&FlagAck == 0 || s.remoteWindow() != 0 {
		t.Fatalf("segment %x, acked %v, remote window %d", b, acked, s.remoteWindow())
	}
}

// Sequence numbers wrap at 255 without losing track of acks, windows or
// messages: a central sends six 1000-octet messages in 20-octet segments
// (over 300 packets) to a peripheral that acknowledges only when its
// window runs low or the message is done.
func TestSessionSequenceWrap(t *testing.T) {
	a := newSession(true, 4, MinSegmentSize, 1024)
	b := newSession(false, 4, MinSegmentSize, 1024)
	msg := bytes.Repeat([]byte("0123456789"), 100)
	var got [][]byte
	packets := 0
	for round := range 6 {
		a.start(msg)
		for a.sending() || b.owesAck() {
			progressed := false
			if a.canSendData() {
				p, _, _ := a.nextData(nil)
				packets++
				r, err := b.receive(p)
				if err != nil {
					t.Fatalf("round %d: b: %v", round, err)
				}
				if r.msg != nil {
					got = append(got, r.msg)
				}
				progressed = true
			}
			if b.owesAck() && (b.localWindow() <= 1 || !a.sending()) && b.remoteWindow() >= 1 {
				if _, err := a.receive(b.standaloneAck(nil)); err != nil {
					t.Fatalf("round %d: a: %v", round, err)
				}
				progressed = true
			}
			if !progressed {
				t.Fatalf("round %d: stalled: a %+v b %+v", round, *a, *b)
			}
		}
	}
	if len(got) != 6 || !bytes.Equal(got[5], msg) {
		t.Fatalf("%d messages", len(got))
	}
	if packets < 300 {
		t.Fatalf("only %d packets: the sequence number did not wrap", packets)
	}
}
