package btp_test

import (
	"context"
	"fmt"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// Decoding a packet from matter.js's codec tests: an acknowledgement of
// packet 0 riding on packet 0, the only segment of a 68-octet message.
func ExampleDecodeSegment() {
	b := []byte{0x0d, 0x00, 0x00, 0x44, 0x00, 0x04, 0x00, 0x00, 0x00} // truncated payload
	b = append(b, make([]byte, 64)...)
	seg, err := btp.DecodeSegment(b)
	if err != nil {
		panic(err)
	}
	fmt.Printf("flags %#02x ack %d seq %d length %d payload %d octets\n", uint8(seg.Flags), seg.Ack, seg.Seq, seg.Length, len(seg.Payload))
	// Output: flags 0x0d ack 0 seq 0 length 68 payload 68 octets
}

// A central and a peripheral over an in-memory GATT link at the minimum
// ATT_MTU: a 1024-octet message crosses in 20-octet segments.
func ExampleClient() {
	ctx := context.Background()
	central, peripheral := newPipe(btp.MinATTMTU)
	done := make(chan *btp.Conn)
	go func() {
		s, err := btp.Server(ctx, peripheral)
		if err != nil {
			panic(err)
		}
		done <- s
	}()
	c, err := btp.Client(ctx, central)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	s := <-done
	defer s.Close()

	if err := c.Send(ctx, make([]byte, 1024)); err != nil {
		panic(err)
	}
	msg, err := s.Receive(ctx)
	if err != nil {
		panic(err)
	}
	p := s.Params()
	fmt.Printf("version %d, segments of %d octets, window %d: received %d octets\n", p.Version, p.SegmentSize, p.Window, len(msg))
	// Output: version 4, segments of 20 octets, window 6: received 1024 octets
}
