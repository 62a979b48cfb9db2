package btp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/ble/btp"
	"github.com/tumbler-iot/tumbler/ble/internal/clocktest"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A 1024-octet message (a DTLS datagram at cBRSKI's PMTU) crosses links
// from the minimum ATT_MTU to 247, both ways at once, in order.
func TestConnCarriesMessagesAtEveryMTU(t *testing.T) {
	for _, mtu := range []int{23, 100, 185, 247} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			c, s, _, _ := connect(t, mtu, nil, nil)
			if p := c.Params(); p.SegmentSize != mtu-3 || p.Window != btp.DefaultWindow || p.Version != btp.Version {
				t.Fatalf("central params %+v", p)
			}
			if c.Params() != s.Params() {
				t.Fatalf("params differ: central %+v, peripheral %+v", c.Params(), s.Params())
			}
			rng := rand.New(rand.NewPCG(uint64(mtu), 1))
			msgs := make([][]byte, 12)
			for i := range msgs {
				n := 1 + rng.IntN(btp.DefaultMaxMessage)
				if i == 0 {
					n = btp.DefaultMaxMessage
				}
				msgs[i] = make([]byte, n)
				for j := range msgs[i] {
					msgs[i][j] = byte(rng.Uint32())
				}
			}
			ctx := testContext(t)
			var wg sync.WaitGroup
			for _, dir := range []struct {
				name     string
				from, to *btp.Conn
			}{{"down", c, s}, {"up", s, c}} {
				wg.Go(func() {
					for i, m := range msgs {
						if err := dir.from.Send(ctx, m); err != nil {
							t.Errorf("%s: send %d: %v", dir.name, i, err)
							return
						}
					}
				})
				wg.Go(func() {
					for i, m := range msgs {
						got, err := dir.to.Receive(ctx)
						if err != nil {
							t.Errorf("%s: receive %d: %v", dir.name, i, err)
							return
						}
						if !bytes.Equal(got, m) {
							t.Errorf("%s: message %d: %d octets, want %d", dir.name, i, len(got), len(m))
						}
					}
				})
			}
			wg.Wait()
			if st := c.Stats(); st.MessagesSent != uint64(len(msgs)) || st.MessagesReceived != uint64(len(msgs)) || st.DroppedReceived != 0 {
				t.Fatalf("central stats %+v", st)
			}
			if c.Err() != nil || s.Err() != nil {
				t.Fatalf("errors: %v, %v", c.Err(), s.Err())
			}
		})
	}
}

// rawPeripheral answers a handshake by hand and returns the request.
func rawPeripheral(t *testing.T, pe *end, resp btp.HandshakeResponse) btp.HandshakeRequest {
	t.Helper()
	ctx := testContext(t)
	b, err := pe.Receive(ctx)
	if err != nil {
		t.Fatalf("raw peripheral: %v", err)
	}
	req, err := btp.DecodeHandshakeRequest(b)
	if err != nil {
		t.Fatalf("raw peripheral: %v", err)
	}
	if err := pe.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	rb, err := resp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := pe.Send(ctx, rb); err != nil {
		t.Fatal(err)
	}
	return req
}

// rawCentral writes a handshake request by hand and returns the response.
func rawCentral(t *testing.T, ce *end, req btp.HandshakeRequest) (btp.HandshakeResponse, error) {
	t.Helper()
	ctx := testContext(t)
	b, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := ce.Send(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := ce.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	b, err = ce.Receive(ctx)
	if err != nil {
		return btp.HandshakeResponse{}, err
	}
	return btp.DecodeHandshakeResponse(b)
}

func TestServerRefusesUnknownVersions(t *testing.T) {
	ce, pe := newPipe(185)
	done := make(chan error, 1)
	go func() {
		_, err := btp.Server(testContext(t), pe)
		done <- err
	}()
	resp, err := rawCentral(t, ce, btp.HandshakeRequest{Versions: [8]uint8{3, 2}, ATTMTU: 185, Window: 6})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version != 0 {
		t.Fatalf("response version %d, want 0 (none)", resp.Version)
	}
	wantErr(t, <-done, btp.ErrVersion)
	if !pe.isClosed() {
		t.Fatal("refused link left open")
	}
}

func TestClientRefusesUnofferedVersion(t *testing.T) {
	for _, v := range []uint8{0, 3, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ce, pe := newPipe(185)
			done := make(chan error, 1)
			go func() {
				_, err := btp.Client(testContext(t), ce)
				done <- err
			}()
			req := rawPeripheral(t, pe, btp.HandshakeResponse{Version: v, SegmentSize: 182, Window: 6})
			if req.Versions != [8]uint8{btp.Version} || req.ATTMTU != 185 || req.Window != btp.DefaultWindow {
				t.Fatalf("request %+v", req)
			}
			wantErr(t, <-done, btp.ErrVersion)
			if !ce.isClosed() {
				t.Fatal("refused link left open")
			}
		})
	}
}

func TestClientClampsPeripheralParameters(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mtu         int
		resp        btp.HandshakeResponse
		wantSeg     int
		wantWindow  int
		wantErrKind error
	}{
		{"window above the offer is clamped", 185, btp.HandshakeResponse{Version: 4, SegmentSize: 182, Window: 200}, 182, btp.DefaultWindow, nil},
		{"smaller window is taken", 185, btp.HandshakeResponse{Version: 4, SegmentSize: 182, Window: 3}, 182, 3, nil},
		{"segment above the link is clamped", 23, btp.HandshakeResponse{Version: 4, SegmentSize: 500, Window: 6}, 20, 6, nil},
		{"segment above ATT's limit is clamped", 600, btp.HandshakeResponse{Version: 4, SegmentSize: 590, Window: 6}, btp.MaxSegmentSize, 6, nil},
		{"window of two", 185, btp.HandshakeResponse{Version: 4, SegmentSize: 182, Window: 2}, 0, 0, btp.ErrHandshake},
		{"tiny segment", 185, btp.HandshakeResponse{Version: 4, SegmentSize: 5, Window: 6}, 0, 0, btp.ErrHandshake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce, pe := newPipe(tc.mtu)
			type result struct {
				c   *btp.Conn
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := btp.Client(testContext(t), ce)
				done <- result{c, err}
			}()
			rawPeripheral(t, pe, tc.resp)
			r := <-done
			if tc.wantErrKind != nil {
				wantErr(t, r.err, tc.wantErrKind)
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.c.Close()
			if p := r.c.Params(); p.SegmentSize != tc.wantSeg || p.Window != tc.wantWindow {
				t.Fatalf("params %+v, want segment %d window %d", p, tc.wantSeg, tc.wantWindow)
			}
		})
	}
}

func TestServerSelectsParameters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		linkMTU    int
		req        btp.HandshakeRequest
		opts       []btp.Option
		wantSeg    uint16
		wantWindow uint8
	}{
		{"central's MTU", 247, btp.HandshakeRequest{Versions: [8]uint8{4}, ATTMTU: 185, Window: 6}, nil, 182, 6},
		{"link's MTU when smaller", 100, btp.HandshakeRequest{Versions: [8]uint8{4}, ATTMTU: 185, Window: 6}, nil, 97, 6},
		{"link's MTU when the central does not know", 100, btp.HandshakeRequest{Versions: [8]uint8{4}, Window: 6}, nil, 97, 6},
		{"configured window caps the central's", 247, btp.HandshakeRequest{Versions: [8]uint8{5, 4}, ATTMTU: 247, Window: 255}, []btp.Option{btp.WithWindow(4)}, 244, 4},
		{"central's smaller window", 247, btp.HandshakeRequest{Versions: [8]uint8{4}, ATTMTU: 247, Window: 3}, nil, 244, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce, pe := newPipe(tc.linkMTU)
			type result struct {
				c   *btp.Conn
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := btp.Server(testContext(t), pe, tc.opts...)
				done <- result{c, err}
			}()
			resp, err := rawCentral(t, ce, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.c.Close()
			if want := (btp.HandshakeResponse{Version: 4, SegmentSize: tc.wantSeg, Window: tc.wantWindow}); resp != want {
				t.Fatalf("response %+v, want %+v", resp, want)
			}
		})
	}
}

func TestServerRefusesBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"not a handshake", []byte{0x05, 0x00, 0x01, 0x00, 0xaa}, btp.ErrMalformed},
		{"window of two", mustMarshal(t, btp.HandshakeRequest{Versions: [8]uint8{4}, ATTMTU: 185, Window: 2}), btp.ErrHandshake},
		{"ATT_MTU below 23", mustMarshal(t, btp.HandshakeRequest{Versions: [8]uint8{4}, ATTMTU: 22, Window: 6}), btp.ErrHandshake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce, pe := newPipe(247)
			done := make(chan error, 1)
			go func() {
				_, err := btp.Server(testContext(t), pe)
				done <- err
			}()
			if err := ce.Send(testContext(t), tc.raw); err != nil {
				t.Fatal(err)
			}
			wantErr(t, <-done, tc.want)
			if !pe.isClosed() {
				t.Fatal("link left open")
			}
		})
	}
}

func mustMarshal(t *testing.T, r btp.HandshakeRequest) []byte {
	t.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandshakeTimeout(t *testing.T) {
	t.Run("server without request", func(t *testing.T) {
		clk := clocktest.New(epoch)
		_, pe := newPipe(247)
		done := make(chan error, 1)
		go func() {
			_, err := btp.Server(context.Background(), pe, btp.WithClock(clk))
			done <- err
		}()
		eventually(t, "handshake timer", func() bool { return clk.Pending() == 1 })
		clk.Advance(btp.DefaultHandshakeTimeout)
		wantErr(t, <-done, btp.ErrHandshakeTimeout)
	})
	t.Run("client without response", func(t *testing.T) {
		clk := clocktest.New(epoch)
		ce, pe := newPipe(247)
		done := make(chan error, 1)
		go func() {
			_, err := btp.Client(context.Background(), ce, btp.WithClock(clk), btp.WithHandshakeTimeout(time.Second))
			done <- err
		}()
		if _, err := pe.Receive(testContext(t)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "handshake timer", func() bool { return clk.Pending() == 1 })
		clk.Advance(999 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("returned before the timeout: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		clk.Advance(time.Millisecond)
		wantErr(t, <-done, btp.ErrHandshakeTimeout)
	})
}

// rawSession opens a Client against a hand-driven peripheral.
func rawSession(t *testing.T, clk *clocktest.Clock, mtu int, opts ...btp.Option) (*btp.Conn, *end) {
	t.Helper()
	ce, pe := newPipe(mtu)
	type result struct {
		c   *btp.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := btp.Client(testContext(t), ce, append([]btp.Option{btp.WithClock(clk)}, opts...)...)
		done <- result{c, err}
	}()
	rawPeripheral(t, pe, btp.HandshakeResponse{Version: 4, SegmentSize: uint16(mtu - 3), Window: 4})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	return r.c, pe
}

// A peer that stops acknowledging ends the session after BTP_ACK_TIMEOUT.
func TestAckTimeout(t *testing.T) {
	clk := clocktest.New(epoch)
	c, pe := rawSession(t, clk, 23, btp.WithIdleTimeout(0))
	ctx := testContext(t)
	if err := c.Send(ctx, bytes.Repeat([]byte{1}, 100)); err != nil {
		t.Fatal(err)
	}
	// The central sends until the window (4, no acks: 3 packets) is full.
	for i := range 3 {
		if _, err := pe.Receive(ctx); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	eventually(t, "ack timer", func() bool { return clk.TimersAt(epoch.Add(btp.DefaultAckTimeout)) == 1 })
	clk.Advance(btp.DefaultAckTimeout - time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	if err := c.Err(); err != nil {
		t.Fatalf("failed before the ack timeout: %v", err)
	}
	clk.Advance(time.Millisecond)
	<-c.Done()
	wantErr(t, c.Err(), btp.ErrAckTimeout)
	_, err := c.Receive(ctx)
	wantErr(t, err, btp.ErrClosed)
	wantErr(t, err, btp.ErrAckTimeout)
	if !pe.isClosed() {
		t.Fatal("link left open")
	}
}

// An idle session stays up on stand-alone acknowledgements, one per
// send-ack delay, alternating sides, until the idle timeout.
func TestKeepAliveAndIdleTimeout(t *testing.T) {
	clk := clocktest.New(epoch)
	opts := []btp.Option{btp.WithClock(clk)}
	c, s, ce, pe := connect(t, 185, opts, opts)
	// acks counts keep-alives sent and received: the clock may move on only
	// once the peer has taken the last one, or its send-ack delay would
	// start late.
	acks := func() (sent, received uint64) {
		cs, ss := c.Stats(), s.Stats()
		return cs.AcksSent + ss.AcksSent, cs.SegmentsReceived + ss.SegmentsReceived
	}
	// 11 × 2.5 s = 27.5 s: past the 15 s ack timeout, short of the 30 s
	// idle timeout.
	for i := range 11 {
		next := clk.Now().Add(btp.DefaultSendAckDelay)
		eventually(t, "send-ack timer", func() bool { return clk.TimersAt(next) == 1 })
		clk.Advance(btp.DefaultSendAckDelay)
		eventually(t, fmt.Sprintf("ack %d", i+1), func() bool {
			sent, received := acks()
			return sent == uint64(i+1) && received == uint64(i+1)
		})
	}
	if c.Err() != nil || s.Err() != nil {
		t.Fatalf("keep-alive failed: %v, %v", c.Err(), s.Err())
	}
	// They alternate, the central first: it owes the handshake response's ack.
	cv, pv := ce.sentValues(), pe.sentValues()
	if len(cv) != 1+6 || len(pv) != 1+5 { // plus the handshake packets
		t.Fatalf("central sent %d, peripheral %d values", len(cv), len(pv))
	}
	for _, v := range append(cv[1:], pv[1:]...) {
		seg, err := btp.DecodeSegment(v)
		if err != nil || seg.Flags != btp.FlagAck {
			t.Fatalf("keep-alive %x: %+v %v", v, seg, err)
		}
	}
	// To exactly the idle timeout: the last keep-alive is 2.5 s old, far
	// from its ack timeout.
	idle := epoch.Add(btp.DefaultIdleTimeout)
	eventually(t, "idle timers", func() bool { return clk.TimersAt(idle) == 2 })
	clk.Advance(idle.Sub(clk.Now()))
	<-c.Done()
	<-s.Done()
	if !errors.Is(c.Err(), btp.ErrIdleTimeout) && !errors.Is(s.Err(), btp.ErrIdleTimeout) {
		t.Fatalf("errors %v, %v; want an idle timeout", c.Err(), s.Err())
	}
}

// With the smallest window, acknowledgements still wait for the send-ack
// timer: a stand-alone acknowledgement does not draw an immediate one
// back. The manual clock never moves, so nothing may be sent once the
// messages are through.
func TestNoAckStormAtMinimumWindow(t *testing.T) {
	clk := clocktest.New(epoch)
	opts := []btp.Option{btp.WithClock(clk), btp.WithWindow(btp.MinWindow)}
	c, s, ce, pe := connect(t, 23, opts, opts)
	ctx := testContext(t)
	for _, dir := range []struct{ from, to *btp.Conn }{{c, s}, {s, c}} {
		if err := dir.from.Send(ctx, make([]byte, 200)); err != nil {
			t.Fatal(err)
		}
		if _, err := dir.to.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sent := func() int { return len(ce.sentValues()) + len(pe.sentValues()) }
	// The last acknowledgements of the exchange settle; a storm never does.
	last := -1
	eventually(t, "traffic to settle", func() bool {
		n := sent()
		if n == last {
			return true
		}
		last = n
		time.Sleep(30 * time.Millisecond)
		return false
	})
	time.Sleep(100 * time.Millisecond)
	if n := sent(); n != last {
		t.Fatalf("%d packets sent with the clock stopped", n-last)
	}
	if c.Params().Window != btp.MinWindow {
		t.Fatalf("window %d", c.Params().Window)
	}
}

// Reassembled messages beyond the receive queue are dropped and counted;
// the session goes on.
func TestReceiveQueueBound(t *testing.T) {
	c, s, _, _ := connect(t, 247, nil, []btp.Option{btp.WithQueueLen(2)})
	ctx := testContext(t)
	for i := range 5 {
		if err := c.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all five delivered or dropped", func() bool {
		st := s.Stats()
		return st.MessagesReceived+st.DroppedReceived == 5
	})
	if st := s.Stats(); st.MessagesReceived != 2 || st.DroppedReceived != 3 {
		t.Fatalf("stats %+v", st)
	}
	for i := range 2 {
		m, err := s.Receive(ctx)
		if err != nil || !bytes.Equal(m, []byte{byte(i)}) {
			t.Fatalf("message %d: %x %v", i, m, err)
		}
	}
	if err := c.Send(ctx, []byte{9}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Receive(ctx); err != nil || m[0] != 9 {
		t.Fatalf("after drops: %x %v", m, err)
	}
}

// With the peer's window full, messages queue up to the bound and
// TrySend refuses the next.
func TestSendQueueBound(t *testing.T) {
	clk := clocktest.New(epoch)
	c, pe := rawSession(t, clk, 23, btp.WithQueueLen(2))
	ctx := testContext(t)
	if err := c.TrySend(bytes.Repeat([]byte{1}, 200)); err != nil {
		t.Fatal(err)
	}
	if _, err := pe.Receive(ctx); err != nil { // the first message is being sent
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.TrySend([]byte{2}); err != nil {
			t.Fatalf("queued message %d: %v", i, err)
		}
	}
	wantErr(t, c.TrySend([]byte{3}), btp.ErrQueueFull)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	wantErr(t, c.Send(short, []byte{3}), context.DeadlineExceeded)
	if c.Err() != nil {
		t.Fatalf("a full queue ended the session: %v", c.Err())
	}
}

func TestSendRefusesBadSizes(t *testing.T) {
	c, _, _, _ := connect(t, 247, []btp.Option{btp.WithMaxMessage(100)}, nil)
	ctx := testContext(t)
	wantErr(t, c.Send(ctx, nil), btp.ErrEmptyMessage)
	wantErr(t, c.TrySend(make([]byte, 101)), btp.ErrMessageTooLarge)
	if err := c.Send(ctx, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
}

// A peer that announces a message above the limit, breaks the sequence or
// acknowledges what was not sent ends the session with that error. (Window
// overflow is a session test: a live Conn acknowledges before its window
// runs out, racing the test's packets.)
func TestPeerViolationsEndSession(t *testing.T) {
	for _, tc := range []struct {
		name    string
		packets [][]byte
		want    error
	}{
		// flags A|B, ack 0 (the handshake response), seq 0, length 1025.
		{"over the reassembly limit", [][]byte{{0x09, 0x00, 0x00, 0x01, 0x04, 0xaa}}, btp.ErrMessageTooLarge},
		{"duplicate", [][]byte{{0x0d, 0x00, 0x00, 0x01, 0x00, 0xaa}, {0x05, 0x00, 0x01, 0x00, 0xaa}}, btp.ErrSequence},
		{"ack of an unsent packet", [][]byte{{0x0d, 0x01, 0x00, 0x01, 0x00, 0xaa}}, btp.ErrAck},
		{"handshake again", [][]byte{mustMarshal(t, btp.HandshakeRequest{Versions: [8]uint8{4}, Window: 6})}, btp.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktest.New(epoch)
			ce, pe := newPipe(23)
			done := make(chan *btp.Conn, 1)
			go func() {
				s, err := btp.Server(testContext(t), pe, btp.WithClock(clk), btp.WithWindow(4))
				if err != nil {
					t.Error(err)
				}
				done <- s
			}()
			if _, err := rawCentral(t, ce, btp.HandshakeRequest{Versions: [8]uint8{4}, ATTMTU: 23, Window: 4}); err != nil {
				t.Fatal(err)
			}
			s := <-done
			if s == nil {
				return
			}
			defer s.Close()
			ctx := testContext(t)
			for _, p := range tc.packets {
				if err := ce.Send(ctx, p); err != nil {
					break // the session ended and closed the link
				}
			}
			<-s.Done()
			wantErr(t, s.Err(), tc.want)
			if !ce.isClosed() {
				t.Fatal("link left open")
			}
		})
	}
}

func TestCloseAndLinkLoss(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		c, s, _, _ := connect(t, 247, nil, nil)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, c.Close(), btp.ErrClosed)
		wantErr(t, c.Send(testContext(t), []byte{1}), btp.ErrClosed)
		wantErr(t, c.TrySend([]byte{1}), btp.ErrClosed)
		<-s.Done()
		wantErr(t, s.Err(), btp.ErrLinkClosed)
	})
	t.Run("link lost", func(t *testing.T) {
		c, s, ce, _ := connect(t, 247, nil, nil)
		_ = ce.Close()
		<-c.Done()
		<-s.Done()
		wantErr(t, c.Err(), btp.ErrLinkClosed)
		wantErr(t, s.Err(), btp.ErrLinkClosed)
	})
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]btp.Option{
		"window 2":       btp.WithWindow(2),
		"window 256":     btp.WithWindow(256),
		"max message 0":  btp.WithMaxMessage(0),
		"max 65536":      btp.WithMaxMessage(1 << 16),
		"queue 0":        btp.WithQueueLen(0),
		"handshake 0":    btp.WithHandshakeTimeout(0),
		"ack timeout 0":  btp.WithAckTimeout(0),
		"send-ack 0":     btp.WithSendAckDelay(0),
		"idle negative":  btp.WithIdleTimeout(-1),
		"nil clock":      btp.WithClock(nil),
		"nil option":     nil,
		"ack delay > to": func() btp.Option { return btp.WithSendAckDelay(btp.DefaultAckTimeout) }(),
	} {
		ce, _ := newPipe(23)
		_, err := btp.Client(testContext(t), ce, o)
		if !errors.Is(err, btp.ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
		if !ce.isClosed() {
			t.Errorf("%s: link left open", name)
		}
	}
}
