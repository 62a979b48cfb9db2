package coap_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/tumbler-iot/tumbler/coap"
)

// A block's request was retransmitted while its answer was only slow, so
// the answer comes twice, and the second copy arrives while the client
// waits for the next block (same token). The client must not take it for
// the next block: it asks again with the next block's message ID, and the
// server answers that from its deduplication cache.
func TestClientIgnoresLateAnswerToEarlierBlock(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	body := bytes.Repeat([]byte("0123456789abcdef"), 2) // two 16-byte blocks

	type result struct {
		asked []int32 // message IDs of the requests for block 1
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() { done <- res }()
		_ = srv.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1500)
		read := func() (message.Message, net.Addr) {
			n, addr, err := srv.ReadFrom(buf)
			if err != nil {
				res.err = err
				return message.Message{}, nil
			}
			m := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
				res.err = err
			}
			return m, addr
		}
		answer := func(to net.Addr, req message.Message, num int, more bool) {
			v := uint32(num) << 4 // SZX 0: 16 bytes
			if more {
				v |= 8
			}
			ob := make([]byte, 16)
			opts, _, _ := message.Options{}.SetUint32(ob, message.Block2, v)
			m := message.Message{Token: req.Token, Options: opts, Code: codes.Content, Payload: body[num*16 : num*16+16],
				MessageID: req.MessageID, Type: message.Acknowledgement}
			out := make([]byte, 1500)
			n, err := coder.DefaultCoder.Encode(m, out)
			if err != nil {
				res.err = err
				return
			}
			_, _ = srv.WriteTo(out[:n], to)
		}
		first, addr := read()
		if res.err != nil {
			return
		}
		answer(addr, first, 0, true)
		second, _ := read()
		if res.err != nil {
			return
		}
		res.asked = append(res.asked, second.MessageID)
		answer(addr, first, 0, true) // the late copy of block 0's answer
		answer(addr, second, 1, false)
		again, _ := read()
		if res.err != nil {
			return
		}
		res.asked = append(res.asked, again.MessageID)
		answer(addr, again, 1, false)
	}()

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := coap.DialUDP(testContext(t), pc, srv.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(testContext(t), "/big", coap.FormatNone)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.Payload, body) {
		t.Fatalf("payload %q, want %q", resp.Payload, body)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.asked) != 2 || res.asked[0] != res.asked[1] {
		t.Fatalf("block 1 asked with message IDs %v, want the same one twice", res.asked)
	}
}
