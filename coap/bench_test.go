package coap_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// noWork answers 2.04 with no payload: the same handler path for Tumbler
// and bare go-coap, so the difference is transport overhead.
var noWork = coap.HandlerFunc(func(context.Context, *coap.Request) (*coap.Response, error) {
	return nil, nil
})

// benchServer runs a Tumbler server for a benchmark.
func benchServer(b *testing.B, l link, serve serveFunc, opts ...coap.ServerOption) (net.Addr, func()) {
	b.Helper()
	srv, err := coap.NewServer(noWork, opts...)
	if err != nil {
		b.Fatal(err)
	}
	pc := l.server(b)
	done := make(chan error, 1)
	go func() { done <- serve(srv, context.Background(), pc) }()
	return pc.LocalAddr(), func() {
		_ = srv.Close()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// BenchmarkDTLSHandshake measures full DTLS handshakes (ECDHE-ECDSA P-256
// with client certificates, cookie exchange) plus one request each, over
// the in-memory radio.
func BenchmarkDTLSHandshake(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			p := testPKI(b)
			l := newRadioLink(b, radio.WithQueueLen(1024))
			addr, stop := benchServer(b, l, serveDTLS, coap.WithDTLS(p.dtlsConfig()))
			defer stop()
			cert := p.pledge(b, "bench-pledge")
			one := func() {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				c, err := coap.DialDTLS(ctx, l.client(b), addr, coap.ClientDTLSConfig{Certificate: cert, RootCAs: p.domain.Pool()})
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				if resp, err := c.Post(ctx, "/x", coap.FormatNone, nil, coap.FormatNone); err != nil || resp.Code != codes.Changed {
					b.Errorf("request: %v %v", resp, err)
				}
			}
			b.ResetTimer()
			if parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one()
					}
				})
			} else {
				for b.Loop() {
					one()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

// runClients drives b.N requests through clients concurrent clients.
func runClients(b *testing.B, clients []*coap.Client) {
	b.Helper()
	pool := make(chan *coap.Client, len(clients))
	for _, c := range clients {
		pool <- c
	}
	post := func(c *coap.Client) bool {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		resp, err := c.Post(ctx, "/checkin", coap.FormatNone, nil, coap.FormatNone)
		if err != nil || resp.Code != codes.Changed {
			b.Errorf("request: %v %v", resp, err)
			return false
		}
		return true
	}
	if len(clients) == 1 {
		b.ResetTimer()
		for b.Loop() {
			if !post(clients[0]) {
				return
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		return
	}
	b.SetParallelism(max(1, len(clients)/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var c *coap.Client
		select {
		case c = <-pool:
		default:
			b.Error("more goroutines than clients")
			return
		}
		for pb.Next() {
			if !post(c) {
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func dialClients(b *testing.B, l link, addr net.Addr, n int) []*coap.Client {
	b.Helper()
	clients := make([]*coap.Client, n)
	for i := range clients {
		c, err := coap.DialUDP(context.Background(), l.client(b), addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		clients[i] = c
	}
	return clients
}

// BenchmarkUDPRequests measures plain CoAP request/response throughput
// (CON POST, piggybacked 2.04) over the in-memory radio with many
// concurrent clients.
func BenchmarkUDPRequests(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			l := newRadioLink(b, radio.WithQueueLen(4096))
			addr, stop := benchServer(b, l, serveUDP)
			defer stop()
			runClients(b, dialClients(b, l, addr, n))
		})
	}
}

// startGoCoAP runs bare go-coap's UDP server (it needs a *net.UDPConn) with
// a handler equivalent to noWork.
func startGoCoAP(b *testing.B) (net.Addr, func()) {
	b.Helper()
	l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	stopRunner := make(chan struct{})
	srv := udp.NewServer(
		options.WithHandlerFunc(func(w *responsewriter.ResponseWriter[*udpclient.Conn], _ *pool.Message) {
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		}),
		options.WithErrors(func(error) {}),
		options.WithPeriodicRunner(periodic.New(stopRunner, time.Second)),
	)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	return l.LocalAddr(), func() {
		srv.Stop()
		<-done
		_ = l.Close()
		close(stopRunner)
	}
}

// BenchmarkUDPLoopback compares Tumbler's ServeUDP with bare go-coap's UDP
// server on loopback UDP, same client (go-coap's engine), same trivial
// handler: the ratio of req/s is the transport overhead.
func BenchmarkUDPLoopback(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("server=tumbler/clients=%d", n), func(b *testing.B) {
			addr, stop := benchServer(b, udpLink{}, serveUDP)
			defer stop()
			runClients(b, dialClients(b, udpLink{}, addr, n))
		})
		b.Run(fmt.Sprintf("server=gocoap/clients=%d", n), func(b *testing.B) {
			addr, stop := startGoCoAP(b)
			defer stop()
			runClients(b, dialClients(b, udpLink{}, addr, n))
		})
	}
}

// heapInUse returns the live heap after a full GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkPeerState measures what a server keeps per peer after one
// request: heap bytes and goroutines. For bare go-coap it is the per-peer
// connection (kept until its inactivity timeout, 16 s by default); for
// Tumbler the duplicate-detection entry (kept for EXCHANGE_LIFETIME,
// bounded by WithDedup).
func BenchmarkPeerState(b *testing.B) {
	const peers = 2000
	b.Run("server=gocoap", func(b *testing.B) {
		for b.Loop() {
			addr, stop := startGoCoAP(b)
			g0, h0 := runtime.NumGoroutine(), heapInUse()
			var wg sync.WaitGroup
			sendFromPeers(b, udpLink{}, addr, peers, &wg)
			wg.Wait()
			g1, h1 := runtime.NumGoroutine(), heapInUse()
			b.ReportMetric(float64(h1-h0)/peers, "B/peer")
			b.ReportMetric(float64(g1-g0)/peers, "goroutines/peer")
			stop()
		}
	})
	b.Run("server=tumbler", func(b *testing.B) {
		for b.Loop() {
			l := newRadioLink(b, radio.WithQueueLen(4096))
			addr, stop := benchServer(b, l, serveUDP)
			g0, h0 := runtime.NumGoroutine(), heapInUse()
			var wg sync.WaitGroup
			sendFromPeers(b, l, addr, peers, &wg)
			wg.Wait()
			g1, h1 := runtime.NumGoroutine(), heapInUse()
			b.ReportMetric(float64(int64(h1)-int64(h0))/peers, "B/peer")
			b.ReportMetric(float64(g1-g0)/peers, "goroutines/peer")
			stop()
		}
	})
}

// sendFromPeers sends one CON request from each of n fresh PacketConns and
// waits for the answers; the PacketConns are closed afterwards so that only
// server state remains.
func sendFromPeers(b *testing.B, l link, addr net.Addr, n int, wg *sync.WaitGroup) {
	b.Helper()
	buf := make([]byte, 64)
	opts, _, _ := message.Options{}.SetPath(buf, "/checkin")
	sem := make(chan struct{}, 64)
	for i := range n {
		pc := l.client(b)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer pc.Close()
			m := message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: int32(i & 0xffff), Token: []byte{byte(i), byte(i >> 8)}, Options: opts}
			d := make([]byte, 64)
			size, err := coder.DefaultCoder.Encode(m, d)
			if err != nil {
				b.Error(err)
				return
			}
			for attempt := 0; attempt < 5; attempt++ {
				if _, err := pc.WriteTo(d[:size], addr); err != nil {
					b.Error(err)
					return
				}
				_ = pc.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := pc.ReadFrom(make([]byte, 256)); err == nil {
					return
				}
			}
			b.Error("peer got no answer")
		}()
	}
}
