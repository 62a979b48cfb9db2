package joinproxy

import (
	"net"
	"strconv"

	"github.com/tumbler-iot/tumbler/coap"
)

// NewDiscovery returns the plain CoAP server a join proxy runs on its CoAP
// port (5683; in a deployment also joined to ff02::fd) so pledges find its
// join port. It answers the cBRSKI -31 discovery query
//
//	REQ: GET coap://[ff02::fd]/.well-known/core?brski-jp=*
//	RES: 2.05 Content, Content-Format: 40
//	     <>;brski-jp=8485
//
// with that one link and serves nothing else; the pledge takes the
// response's source address as the join proxy's address. Serve it with
// ServeUDP on the CoAP port; opts are coap.ServerOptions (WithLogger,
// WithMetrics ...).
//
// draft-ietf-anima-constrained-voucher-31 §"Discovery" (the brski-jp
// target attribute that replaced rt=brski.jp in -31; ../shared/spec/
// cbrski.md §6.2); the join proxy draft §"Pledge Discovers Join Proxy"
// defers to it.
func NewDiscovery(joinPort int, opts ...coap.ServerOption) (*coap.Server, error) {
	if joinPort < 1 || joinPort > 65535 {
		return nil, invalid("join port %d", joinPort)
	}
	mux := coap.NewMux()
	mux.AddLink("", [2]string{"brski-jp", strconv.Itoa(joinPort)})
	return coap.NewServer(mux, opts...)
}

// Port is the port of a UDP or host:port address, for NewDiscovery:
// Port(link.LocalAddr()) is the join port to announce.
func Port(a net.Addr) (int, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.Port, u.Port > 0
	}
	if a == nil {
		return 0, false
	}
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(p)
	return n, err == nil && n > 0 && n < 65536
}
