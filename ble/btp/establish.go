package btp

import (
	"context"
	"errors"
	"fmt"
)

// Params are a session's negotiated parameters.
type Params struct {
	// Version is the BTP version in use.
	Version uint8
	// SegmentSize is the largest packet either side sends.
	SegmentSize int
	// Window is the receive window of both sides, in packets.
	Window int
	// ATTMTU is SegmentSize+3: the ATT_MTU the segment size stands for.
	ATTMTU int
}

// Client opens a BTP session as the central (§4.18.3): it writes the
// handshake request to C1, subscribes to C2 and waits for the
// peripheral's response. The central offers Version only.
//
// Client owns link from the call on: the returned Conn closes it, and so
// does a failed handshake. The peer's window is clamped to the one offered
// (connectedhomeip PR #72422 makes CHIP centrals do the same) and its
// segment size to what the link carries.
func Client(ctx context.Context, link CentralLink, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		_ = link.Close()
		return nil, err
	}
	hctx, stop := handshakeContext(ctx, cfg)
	defer stop()
	p, err := clientHandshake(hctx, link, cfg)
	if err != nil {
		_ = link.Close()
		return nil, handshakeErr(hctx, err)
	}
	return newConn(link, cfg, p, true), nil
}

func clientHandshake(ctx context.Context, link CentralLink, cfg config) (Params, error) {
	att := link.ATTMTU()
	req := HandshakeRequest{Versions: [8]uint8{Version}, ATTMTU: uint16(min(att, 0xffff)), Window: uint8(cfg.window)}
	b, err := req.MarshalBinary()
	if err != nil {
		return Params{}, err
	}
	if err := link.Send(ctx, b); err != nil {
		return Params{}, err
	}
	if err := link.Subscribe(ctx); err != nil {
		return Params{}, err
	}
	b, err = link.Receive(ctx)
	if err != nil {
		return Params{}, err
	}
	resp, err := DecodeHandshakeResponse(b)
	if err != nil {
		return Params{}, err
	}
	if !req.Supports(resp.Version) {
		return Params{}, fmt.Errorf("%w: peripheral selected version %d, offered %d", ErrVersion, resp.Version, Version)
	}
	if int(resp.Window) < MinWindow {
		return Params{}, fmt.Errorf("%w: window %d below %d", ErrHandshake, resp.Window, MinWindow)
	}
	seg := int(resp.SegmentSize)
	if att > 0 {
		seg = min(seg, att-3)
	}
	seg = min(seg, MaxSegmentSize)
	if seg < MinSegmentSize {
		return Params{}, fmt.Errorf("%w: segment size %d below %d", ErrHandshake, seg, MinSegmentSize)
	}
	return Params{Version: resp.Version, SegmentSize: seg, Window: min(int(resp.Window), cfg.window), ATTMTU: seg + 3}, nil
}

// Server accepts a BTP session as the peripheral (§4.18.3): it reads the
// handshake request from C1, waits for the central to subscribe to C2
// and indicates the response. The segment size is the ATT_MTU (the
// central's observation, else the link's, the smaller if both are known)
// less 3, at most MaxSegmentSize; the window is the smaller of the
// central's and the configured one.
//
// A central that offers no version this side speaks gets a response with
// version 0, as CHIP answers, and ErrVersion. Server owns link like Client.
func Server(ctx context.Context, link PeripheralLink, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		_ = link.Close()
		return nil, err
	}
	hctx, stop := handshakeContext(ctx, cfg)
	defer stop()
	p, err := serverHandshake(hctx, link, cfg)
	if err != nil {
		_ = link.Close()
		return nil, handshakeErr(hctx, err)
	}
	return newConn(link, cfg, p, false), nil
}

func serverHandshake(ctx context.Context, link PeripheralLink, cfg config) (Params, error) {
	b, err := link.Receive(ctx)
	if err != nil {
		return Params{}, err
	}
	req, err := DecodeHandshakeRequest(b)
	if err != nil {
		return Params{}, err
	}
	att := int(req.ATTMTU)
	if own := link.ATTMTU(); own > 0 && (att == 0 || own < att) {
		att = own
	}
	if att == 0 {
		att = MinATTMTU
	}
	if att < MinATTMTU {
		return Params{}, fmt.Errorf("%w: ATT_MTU %d below %d", ErrHandshake, att, MinATTMTU)
	}
	window := min(int(req.Window), cfg.window)
	if window < MinWindow {
		return Params{}, fmt.Errorf("%w: window %d below %d", ErrHandshake, req.Window, MinWindow)
	}
	p := Params{Version: Version, SegmentSize: min(att-3, MaxSegmentSize), Window: window}
	p.ATTMTU = p.SegmentSize + 3
	if !req.Supports(Version) {
		p.Version = 0
	}
	if err := link.WaitSubscribed(ctx); err != nil {
		return Params{}, err
	}
	resp := HandshakeResponse{Version: p.Version, SegmentSize: uint16(p.SegmentSize), Window: uint8(p.Window)}
	b, err = resp.MarshalBinary()
	if err != nil {
		return Params{}, err
	}
	if err := link.Send(ctx, b); err != nil {
		return Params{}, err
	}
	if p.Version == 0 {
		return Params{}, fmt.Errorf("%w: central offered %v, this side speaks %d", ErrVersion, req.Versions, Version)
	}
	return p, nil
}

// handshakeContext bounds the handshake with the configured clock.
func handshakeContext(ctx context.Context, cfg config) (context.Context, func()) {
	hctx, cancel := context.WithCancelCause(ctx)
	t := cfg.clock.AfterFunc(cfg.handshakeTimeout, func() { cancel(ErrHandshakeTimeout) })
	return hctx, func() {
		t.Stop()
		cancel(nil)
	}
}

// handshakeErr reports a handshake that the timer cut short as
// ErrHandshakeTimeout.
func handshakeErr(hctx context.Context, err error) error {
	if cause := context.Cause(hctx); errors.Is(cause, ErrHandshakeTimeout) && !errors.Is(err, ErrHandshakeTimeout) {
		return fmt.Errorf("%w: %w", ErrHandshakeTimeout, err)
	}
	return err
}
