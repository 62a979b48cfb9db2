package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Network is the net.Addr network of relay addresses.
const Network = "thread-relay"

// Addr is a joiner as the relay sees it: the coordinates RLY_RX.ntf gives
// and RLY_TX.ntf needs (Joiner IID, Joiner UDP Port, Joiner Router
// Locator TLVs; OpenThread src/core/meshcop/joiner_router.cpp). The joiner
// itself is at [fe80::IID]:Port on the Joiner Router's link.
type Addr struct {
	IID     [8]byte
	Port    uint16
	Locator uint16
}

var _ net.Addr = Addr{}

// Network is "thread-relay".
func (a Addr) Network() string { return Network }

// LinkLocal is the joiner's link-local address fe80::IID.
func (a Addr) LinkLocal() netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	copy(b[8:], a.IID[:])
	return netip.AddrFrom16(b)
}

// String is the joiner's link-local address with the Joiner Router's
// RLOC16 as zone, and the port: "[fe80::d45e:64fa:83f8:1cf7%rloc-0400]:993".
// It is unique per joiner session, as DTLS demultiplexing needs.
func (a Addr) String() string {
	return netip.AddrPortFrom(a.LinkLocal().WithZone(fmt.Sprintf("rloc-%04x", a.Locator)), a.Port).String()
}

// ParseAddr parses what Addr.String returns.
func ParseAddr(s string) (Addr, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %q: %v", ErrUnknownJoiner, s, err)
	}
	ip := ap.Addr()
	zone, ok := strings.CutPrefix(ip.Zone(), "rloc-")
	var loc uint16
	if _, err := fmt.Sscanf(zone, "%04x", &loc); !ok || err != nil || len(zone) != 4 {
		return Addr{}, fmt.Errorf("%w: %q has no rloc-XXXX zone", ErrUnknownJoiner, s)
	}
	b := ip.WithZone("").As16()
	if !ip.Is6() || b[0] != 0xfe || b[1] != 0x80 {
		return Addr{}, fmt.Errorf("%w: %q is not link-local", ErrUnknownJoiner, s)
	}
	a := Addr{Port: ap.Port(), Locator: loc}
	copy(a.IID[:], b[8:])
	return a, nil
}

// asAddr accepts Addr, *Addr or anything whose String parses.
func asAddr(na net.Addr) (Addr, error) {
	switch a := na.(type) {
	case Addr:
		return a, nil
	case *Addr:
		if a != nil {
			return *a, nil
		}
	case nil:
	default:
		return ParseAddr(a.String())
	}
	return Addr{}, fmt.Errorf("%w: nil address", ErrUnknownJoiner)
}

// localAddr is the relay's own address. Its String is not host:port, so
// that a server announcing "its port" (gateway.ServeDTLS) announces none:
// a Thread joiner is not reached by IP discovery.
type localAddr struct{}

func (localAddr) Network() string { return Network }
func (localAddr) String() string  { return Network }
