package joinproxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// BenchmarkJPY measures the JPY codec on the draft's Appendix A request
// (a 427-byte ClientHello).
func BenchmarkJPY(b *testing.B) {
	in := loadHex(b, "appendix-a-request.hex")
	m, err := Decode(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWrap measures what the stateless join proxy does per datagram:
// wrap (seal the header, encode) toward the registrar and unwrap (decode,
// open the header) back.
func BenchmarkWrap(b *testing.B) {
	p, err := NewStateless(radio.Addr("reg:1"), WithRand(seededRand(1)))
	if err != nil {
		b.Fatal(err)
	}
	pledge := &net.UDPAddr{IP: net.ParseIP("fe80::1234:5678"), Port: 45965, Zone: "wpan0"}
	content := loadHex(b, "appendix-a-request.hex")[21:] // the 427-byte ClientHello
	network := func(int) (string, bool) { return "udp", true }
	b.Run("wrap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.wrap(0, pledge, content); err != nil {
				b.Fatal(err)
			}
		}
	})
	msg, err := p.wrap(0, pledge, content)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unwrap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, _, err := p.unwrap(msg, network); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRelay measures datagrams relayed per second from one pledge to
// the registrar over the in-memory radio, 32 in flight.
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []string{"stateful", "stateless"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			reg := e.listen(b, "reg:5684")
			link := e.listen(b, "jp:8485")
			switch mode {
			case "stateful":
				p, err := NewStateful(radio.Addr("reg:5684"), e.upstreams("up"))
				if err != nil {
					b.Fatal(err)
				}
				serve(b, func(ctx context.Context) error { return p.Serve(ctx, link) })
			case "stateless":
				p, err := NewStateless(radio.Addr("reg:5684"))
				if err != nil {
					b.Fatal(err)
				}
				up := e.listen(b, "up:1")
				serve(b, func(ctx context.Context) error { return p.Serve(ctx, up, link) })
			}
			pledge := e.listen(b, "p:1")
			payload := make([]byte, 200)
			buf := make([]byte, 2048)
			const window = 32
			if err := reg.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				n := min(window, b.N-sent)
				for range n {
					if _, err := pledge.WriteTo(payload, radio.Addr("jp:8485")); err != nil {
						b.Fatal(err)
					}
				}
				for range n {
					if _, _, err := reg.ReadFrom(buf); err != nil {
						b.Fatal(err)
					}
				}
				sent += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "datagrams/s")
		})
	}
}
