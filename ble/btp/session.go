package btp

import "fmt"

// session is the BTP state machine of one side after the handshake:
// sequence numbers, acknowledgements, the receive windows, segmentation of
// the message being sent and reassembly of the one being received
// (§4.18.4). It knows nothing of links, goroutines or time;
// Conn drives it. It is not safe for concurrent use.
//
// Sequence numbers are 8-bit and count every packet each side sends,
// stand-alone acknowledgements included; every packet is acknowledged. The
// handshake response is the peripheral's packet 0, so the central starts
// owing an acknowledgement for it and the peripheral starts with it in
// flight (CHIP BtpEngine::Init, BLEEndPoint::HandleCapabilitiesResponseReceived;
// matter.js BtpSessionHandler).
type session struct {
	window  int // packets either side may have unacknowledged
	segSize int // largest packet either side may send
	maxMsg  int // largest message sent or reassembled

	txNext    uint8 // sequence number of the next packet sent
	txUnacked int   // packets sent and not yet acknowledged, 0..window
	rxNext    uint8 // sequence number expected next
	rxUnacked int   // packets received since the last acknowledgement sent, 0..window

	rxOn   bool   // a message is being reassembled
	rxBuf  []byte // its octets so far; capacity is the announced length
	rxWant int    // the announced length

	out []byte // message being sent, nil if none
	off int    // octets of out already sent
}

func newSession(central bool, window, segSize, maxMsg int) *session {
	s := &session{window: window, segSize: segSize, maxMsg: maxMsg}
	if central {
		// Owes the acknowledgement of the handshake response, packet 0.
		s.rxNext, s.rxUnacked = 1, 1
	} else {
		// The handshake response, packet 0, is in flight.
		s.txNext, s.txUnacked = 1, 1
	}
	return s
}

// rxResult is what one received packet did.
type rxResult struct {
	acked bool   // it acknowledged packets in flight
	data  bool   // it carried message data
	msg   []byte // it completed this message
}

// receive processes one packet from the peer. Any error is a protocol
// violation that ends the session.
func (s *session) receive(b []byte) (rxResult, error) {
	var r rxResult
	if len(b) > s.segSize {
		return r, fmt.Errorf("%w: %d octets, negotiated %d", ErrSegmentTooLarge, len(b), s.segSize)
	}
	seg, err := DecodeSegment(b)
	if err != nil {
		return r, err
	}
	if seg.Flags&FlagAck != 0 {
		if s.txUnacked == 0 {
			return r, fmt.Errorf("%w: ack %d with nothing in flight", ErrAck, seg.Ack)
		}
		oldest := s.txNext - uint8(s.txUnacked)
		n := int(seg.Ack-oldest) + 1
		if n > s.txUnacked {
			return r, fmt.Errorf("%w: ack %d, in flight %d..%d", ErrAck, seg.Ack, oldest, s.txNext-1)
		}
		s.txUnacked -= n
		r.acked = true
	}
	if seg.Seq != s.rxNext {
		return r, fmt.Errorf("%w: got %d, want %d", ErrSequence, seg.Seq, s.rxNext)
	}
	s.rxNext++
	s.rxUnacked++
	if s.rxUnacked > s.window {
		return r, fmt.Errorf("%w: %d unacknowledged packets, window %d", ErrWindow, s.rxUnacked, s.window)
	}
	if !seg.IsData() {
		return r, nil
	}
	r.data = true
	if seg.Flags&FlagBegin != 0 {
		if s.rxOn {
			return r, fmt.Errorf("%w: beginning segment %d inside a message", ErrReassembly, seg.Seq)
		}
		if int(seg.Length) > s.maxMsg {
			return r, fmt.Errorf("%w: peer announced %d octets, limit %d", ErrMessageTooLarge, seg.Length, s.maxMsg)
		}
		s.rxOn, s.rxWant = true, int(seg.Length)
		s.rxBuf = make([]byte, 0, s.rxWant)
	} else if !s.rxOn {
		return r, fmt.Errorf("%w: continuing segment %d without a beginning", ErrReassembly, seg.Seq)
	}
	if len(s.rxBuf)+len(seg.Payload) > s.rxWant {
		return r, fmt.Errorf("%w: segment %d overruns the announced %d octets", ErrReassembly, seg.Seq, s.rxWant)
	}
	s.rxBuf = append(s.rxBuf, seg.Payload...)
	if seg.Flags&FlagEnd != 0 {
		if len(s.rxBuf) != s.rxWant {
			return r, fmt.Errorf("%w: message ends after %d of %d octets", ErrReassembly, len(s.rxBuf), s.rxWant)
		}
		r.msg = s.rxBuf
		s.rxOn, s.rxBuf, s.rxWant = false, nil, 0
	}
	return r, nil
}

// owesAck reports whether received packets await acknowledgement.
func (s *session) owesAck() bool { return s.rxUnacked > 0 }

// remoteWindow is how many more packets the peer will accept now.
func (s *session) remoteWindow() int { return s.window - s.txUnacked }

// localWindow is how many more packets this side will accept before it
// must acknowledge.
func (s *session) localWindow() int { return s.window - s.rxUnacked }

// sending reports whether a message is being segmented.
func (s *session) sending() bool { return s.out != nil }

// start makes msg the message to segment next. The caller checked its size
// and that no message is being sent.
func (s *session) start(msg []byte) { s.out, s.off = msg, 0 }

// canSendData reports whether the next segment may go now: a data packet
// that carries no acknowledgement must leave the peer a free slot for one
// (CHIP BTP_WINDOW_NO_ACK_SEND_THRESHOLD), so the two sides can never both
// wait with full windows.
func (s *session) canSendData() bool {
	if s.out == nil {
		return false
	}
	w := s.remoteWindow()
	return w > 1 || (w == 1 && s.owesAck())
}

// nextData appends the next segment of the message to dst, piggybacking
// the acknowledgement if one is owed. done reports that it was the last.
// The caller checked canSendData.
func (s *session) nextData(dst []byte) (b []byte, acked, done bool) {
	seg := Segment{Seq: s.txNext}
	if s.owesAck() {
		seg.Flags |= FlagAck
		seg.Ack = s.rxNext - 1
		s.rxUnacked = 0
		acked = true
	}
	if s.off == 0 {
		seg.Flags |= FlagBegin
		seg.Length = uint16(len(s.out))
	} else {
		seg.Flags |= FlagContinue
	}
	n := min(s.segSize-seg.HeaderLen(), len(s.out)-s.off)
	seg.Payload = s.out[s.off : s.off+n]
	s.off += n
	if s.off == len(s.out) {
		seg.Flags |= FlagEnd
		s.out, s.off, done = nil, 0, true
	}
	s.txNext++
	s.txUnacked++
	return seg.append(dst), acked, done
}

// standaloneAck appends a stand-alone acknowledgement of every packet
// received so far (§4.18.4). It takes a sequence number and a slot of
// the peer's window like any packet; the caller checked remoteWindow.
func (s *session) standaloneAck(dst []byte) []byte {
	seg := Segment{Flags: FlagAck, Ack: s.rxNext - 1, Seq: s.txNext}
	s.rxUnacked = 0
	s.txNext++
	s.txUnacked++
	return seg.append(dst)
}
