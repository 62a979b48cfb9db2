package joinproxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
)

// maxZone bounds the IPv6 zone (interface name) carried with a UDP pledge
// address: Linux interface names are at most 15 bytes (IFNAMSIZ 16).
const maxZone = 16

// linkLocalPrefix is fe80::/64, elided from link-local pledge addresses.
var linkLocalPrefix = []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0}

// appendPledge appends the header plaintext naming pledge address a on
// link index link: form(1) | link(1) | address (see header.go).
func appendPledge(b []byte, link int, a net.Addr) ([]byte, error) {
	if link < 0 || link > 255 {
		return nil, fmt.Errorf("%w: link index %d", ErrUnaddressable, link)
	}
	if u, ok := a.(*net.UDPAddr); ok {
		if u.Port <= 0 || u.Port > 65535 || len(u.Zone) > maxZone {
			return nil, fmt.Errorf("%w: %v", ErrUnaddressable, u)
		}
		var port [2]byte
		binary.BigEndian.PutUint16(port[:], uint16(u.Port))
		if ip4 := u.IP.To4(); ip4 != nil && u.Zone == "" {
			b = append(b, formIPv4, byte(link))
			b = append(b, port[:]...)
			return append(b, ip4...), nil
		}
		ip := u.IP.To16()
		if ip == nil {
			return nil, fmt.Errorf("%w: %v", ErrUnaddressable, u)
		}
		if bytes.Equal(ip[:8], linkLocalPrefix) {
			b = append(b, formIPv6Local, byte(link))
			b = append(b, port[:]...)
			b = append(b, ip[8:]...)
		} else {
			b = append(b, formIPv6, byte(link))
			b = append(b, port[:]...)
			b = append(b, ip...)
		}
		return append(b, u.Zone...), nil
	}
	if a == nil {
		return nil, fmt.Errorf("%w: nil address", ErrUnaddressable)
	}
	s := a.String()
	if s == "" || len(s) > MaxLinkAddr {
		return nil, fmt.Errorf("%w: %d-byte link address, limit %d", ErrUnaddressable, len(s), MaxLinkAddr)
	}
	b = append(b, formLink, byte(link))
	return append(b, s...), nil
}

// parsePledge is the inverse of appendPledge. network reports the
// Network() of link's addresses, and false for a link that does not exist.
// A plaintext that appendPledge cannot have produced wraps ErrBadHeader.
func parsePledge(pt []byte, network func(link int) (string, bool)) (int, net.Addr, error) {
	if len(pt) < 2 {
		return 0, nil, fmt.Errorf("%w: short plaintext", ErrBadHeader)
	}
	form, link, rest := pt[0], int(pt[1]), pt[2:]
	nw, ok := network(link)
	if !ok {
		return 0, nil, fmt.Errorf("%w: no link %d", ErrBadHeader, link)
	}
	if form == formLink {
		if len(rest) == 0 || len(rest) > MaxLinkAddr {
			return 0, nil, fmt.Errorf("%w: link address of %d bytes", ErrBadHeader, len(rest))
		}
		return link, linkAddr{network: nw, addr: string(rest)}, nil
	}
	var ipLen int
	switch form {
	case formIPv4:
		ipLen = net.IPv4len
	case formIPv6Local:
		ipLen = 8
	case formIPv6:
		ipLen = net.IPv6len
	default:
		return 0, nil, fmt.Errorf("%w: address form %d", ErrBadHeader, form)
	}
	if len(rest) < 2+ipLen {
		return 0, nil, fmt.Errorf("%w: short address", ErrBadHeader)
	}
	port := int(binary.BigEndian.Uint16(rest))
	raw, zone := rest[2:2+ipLen], rest[2+ipLen:]
	if port == 0 || len(zone) > maxZone || (form == formIPv4 && len(zone) > 0) {
		return 0, nil, fmt.Errorf("%w: bad UDP address", ErrBadHeader)
	}
	ip := make(net.IP, net.IPv6len)
	switch form {
	case formIPv4:
		ip = net.IPv4(raw[0], raw[1], raw[2], raw[3])
	case formIPv6Local:
		copy(ip, linkLocalPrefix)
		copy(ip[8:], raw)
	case formIPv6:
		copy(ip, raw)
	}
	return link, &net.UDPAddr{IP: ip, Port: port, Zone: string(zone)}, nil
}

// linkAddr is a pledge address on a link whose addresses are strings (the
// simulated radio, a relay adapter): what the link's ReadFrom returned,
// rebuilt from its String().
type linkAddr struct{ network, addr string }

func (a linkAddr) Network() string { return a.network }
func (a linkAddr) String() string  { return a.addr }

// pledgeHost is the pledge part of a pledge address, IP_P without the port,
// for the per-pledge limit of the stateful mode. For a link address that
// is not host:port, it is the whole address.
func pledgeHost(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		if u.Zone != "" {
			return u.IP.String() + "%" + u.Zone
		}
		return u.IP.String()
	}
	s := a.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}
