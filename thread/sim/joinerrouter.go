package sim

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// ServeJoiners runs the Joiner Router's joiner port on pc (an endpoint of
// the simulated link at JoinerRouterAddr) until ctx ends: each joiner
// datagram becomes an RLY_RX.ntf to the commissioner, while joining is
// enabled (an active commissioner with non-empty steering data; a real
// Joiner Router closes the port otherwise). ServeJoiners closes pc.
// OpenThread src/core/meshcop/joiner_router.cpp (HandleUdpReceive).
func (b *BorderAgent) ServeJoiners(ctx context.Context, pc net.PacketConn) error {
	b.mu.Lock()
	b.jr = pc
	b.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = pc.Close() })
	defer stop()
	defer pc.Close()
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim: Joiner Router read: %w", err)
		}
		b.relayRx(ctx, from, buf[:n])
	}
}

// relayRx wraps one joiner datagram in an RLY_RX.ntf.
func (b *BorderAgent) relayRx(ctx context.Context, from net.Addr, data []byte) {
	ap, err := netip.ParseAddrPort(from.String())
	if err != nil || !ap.Addr().Is6() || !ap.Addr().IsLinkLocalUnicast() {
		b.stats.dropJoin.Add(1)
		return
	}
	b.mu.Lock()
	b.expire()
	s, open := b.session, b.active && !b.steering.Empty()
	b.mu.Unlock()
	if s == nil || !open {
		b.stats.dropJoin.Add(1)
		return
	}
	ip := ap.Addr().As16()
	rx := &meshcop.Relay{JoinerUDPPort: ap.Port(), JoinerRouterLocator: b.cfg.Locator, Payload: data}
	copy(rx.JoinerIID[:], ip[8:])
	payload, err := rx.RxTLVs().Encode()
	if err != nil {
		b.stats.dropJoin.Add(1)
		return
	}
	if err := s.Notify(ctx, &coap.Request{Method: codes.POST, Path: meshcop.PathRelayRx,
		ContentFormat: coap.FormatNone, Accept: coap.FormatNone, Payload: payload}); err != nil {
		b.log.Debug().Err(err).Msg("RLY_RX not sent")
		return
	}
	b.stats.rx.Add(1)
}

// handleRelayTx is RLY_TX.ntf from the commissioner: the Border Agent
// forwards it to the Joiner Router named by the locator, which sends the
// encapsulated datagram to [fe80::IID]:port (border_agent.cpp
// HandleTmf<kUriRelayTx>; joiner_router.cpp HandleRelayTransmit). A KEK
// is counted; the simulation sends no JOIN_ENT.
func (b *BorderAgent) handleRelayTx(_ context.Context, r *coap.Request) (*coap.Response, error) {
	tx, err := meshcop.ParseRelay(r.Payload)
	if err != nil {
		b.stats.dropTx.Add(1)
		return nil, badRequest("RLY_TX", err)
	}
	if tx.JoinerRouterLocator != b.cfg.Locator {
		b.stats.dropTx.Add(1)
		return nil, coap.Errorf(codes.NotFound, "no Joiner Router at that locator", nil)
	}
	if tx.KEK != nil {
		b.stats.keks.Add(1)
	}
	var ip [16]byte
	ip[0], ip[1] = 0xfe, 0x80
	copy(ip[8:], tx.JoinerIID[:])
	to := netip.AddrPortFrom(netip.AddrFrom16(ip), tx.JoinerUDPPort).String()
	b.mu.Lock()
	jr := b.jr
	b.mu.Unlock()
	if jr == nil {
		b.stats.dropTx.Add(1)
		return nil, coap.Errorf(codes.ServiceUnavailable, "Joiner Router not running", nil)
	}
	if _, err := jr.WriteTo(tx.Payload, radio.Addr(to)); err != nil {
		b.stats.dropTx.Add(1)
		return nil, err
	}
	b.stats.tx.Add(1)
	return nil, nil
}
