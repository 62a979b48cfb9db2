package coap

import (
	"bytes"
	"context"
	"fmt"
	"net"

	"github.com/plgd-dev/go-coap/v3/message/pool"
	"golang.org/x/sync/errgroup"

	"github.com/tumbler-iot/tumbler/coap/internal/msglayer"
)

// udpPeer is the far end of one plain CoAP exchange.
type udpPeer struct {
	pc   net.PacketConn
	addr net.Addr
	key  string
}

func (p udpPeer) Key() string         { return p.key }
func (p udpPeer) Send(b []byte) error { _, err := p.pc.WriteTo(b, p.addr); return err }

type udpJob struct {
	addr net.Addr
	data []byte
}

// ServeUDP serves plain CoAP on pc until ctx is cancelled or Close is
// called, then returns nil. One goroutine reads, a fixed pool of workers
// (WithUDPWorkers) runs the message layer and the handler; nothing is kept
// per peer except duplicate-detection and block-wise entries, which are
// bounded and expire. ServeUDP owns pc and closes it.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	run, end, ok := s.begin(ctx)
	if !ok {
		_ = pc.Close()
		return nil
	}
	defer end()
	lcfg, err := s.layerConfig(DefaultUDPMTU, coapOverhead)
	if err != nil {
		_ = pc.Close()
		return err
	}
	layer := msglayer.New(lcfg, func(ctx context.Context, p udpPeer, req, resp *pool.Message) {
		s.serveRequest(ctx, transportUDP, Peer{Addr: p.addr}, req, resp)
	})
	jobs := make(chan udpJob, s.cfg.udpQueue)
	g, gctx := errgroup.WithContext(run)
	g.Go(func() error {
		<-gctx.Done()
		_ = pc.Close() // unblocks the reader
		return nil
	})
	g.Go(func() error {
		defer close(jobs)
		buf := make([]byte, maxDatagram+1)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				if gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("coap: UDP read: %w", err)
			}
			if n > maxDatagram {
				s.metrics.drop(transportUDP, dropTooBig)
				continue
			}
			if addr == nil {
				continue
			}
			select {
			case jobs <- udpJob{addr: addr, data: bytes.Clone(buf[:n])}:
			default:
				s.metrics.drop(transportUDP, dropOverload)
			}
		}
	})
	for range s.cfg.workers {
		g.Go(func() error {
			for j := range jobs {
				p := udpPeer{pc: pc, addr: j.addr, key: j.addr.String()}
				res := layer.Receive(gctx, p, j.data)
				s.metrics.account(transportUDP, res)
				if res.Err != nil {
					s.log.Debug().Stringer("peer", j.addr).Err(res.Err).Msg("UDP send")
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		s.housekeep(gctx, layer.Expire)
		return nil
	})
	s.log.Info().Stringer("addr", pc.LocalAddr()).Msg("serving CoAP over UDP")
	return g.Wait()
}
