package btp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tumbler-iot/tumbler/ble/btp"
)

// BenchmarkConnMessage sends 1024-octet messages one way over an in-memory
// link and waits for each: the engine's cost per DTLS datagram, without
// radio delays.
func BenchmarkConnMessage(b *testing.B) {
	for _, mtu := range []int{23, 247} {
		b.Run(fmt.Sprintf("mtu%d", mtu), func(b *testing.B) {
			ce, pe := newPipe(mtu)
			ctx := context.Background()
			done := make(chan *btp.Conn, 1)
			go func() {
				s, err := btp.Server(ctx, pe)
				if err != nil {
					b.Error(err)
				}
				done <- s
			}()
			c, err := btp.Client(ctx, ce)
			if err != nil {
				b.Fatal(err)
			}
			s := <-done
			defer c.Close()
			defer s.Close()
			msg := make([]byte, 1024)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Receive(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeSegment(b *testing.B) {
	seg := append([]byte{0x0d, 0x00, 0x00, 0xf0, 0x00}, make([]byte, 240)...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := btp.DecodeSegment(seg); err != nil {
			b.Fatal(err)
		}
	}
}
