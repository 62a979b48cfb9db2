// Package joinproxy is the constrained join proxy of
// draft-ietf-anima-constrained-join-proxy: it lets a pledge that has only a
// link-local address run cBRSKI (CoAP over DTLS) with a registrar several
// hops away, relaying the pledge's UDP datagrams without reading them.
//
// Two modes, as the draft defines them:
//
//   - Stateful: a UDP circuit proxy. One circuit per pledge tuple, each
//     with its own registrar-facing socket; DTLS records pass untouched.
//     The registrar sees ordinary DTLS clients on its CoAPS port.
//   - Stateless: each datagram travels to the registrar's JPY port in a
//     JPY message, [header, content], whose header names the pledge,
//     sealed under a key only the join proxy holds. The join proxy keeps
//     no per-pledge state.
//
// RegistrarConn is the registrar's side of the stateless mode: a
// net.PacketConn over the JPY socket on which the unchanged DTLS server
// serves pledges behind stateless join proxies. NewDiscovery answers the
// pledges' "GET /.well-known/core?brski-jp=*" with the join port.
//
// Everything runs on net.PacketConn, so the pledge-facing side can be a
// UDP socket, the testbed radio, or a Thread or BLE relay adapter.
//
// Wiring a join proxy on a border router (addresses illustrative):
//
//	link, _ := net.ListenPacket("udp", "[fe80::1%wpan0]:8485")  // join port
//	disc, _ := net.ListenPacket("udp", "[::]:5683")            // plus ff02::fd
//	srv, _ := joinproxy.NewDiscovery(8485)
//	go srv.ServeUDP(ctx, disc)
//
//	// stateful, toward the registrar's CoAPS port
//	p, _ := joinproxy.NewStateful(registrarCoAPS, func() (net.PacketConn, error) {
//		return net.ListenPacket("udp", "[2001:db8::7]:0")
//	})
//	go p.Serve(ctx, link)
//
//	// or stateless, toward its JPY port
//	s, _ := joinproxy.NewStateless(registrarJPY)
//	up, _ := net.ListenPacket("udp", "[2001:db8::7]:0")
//	go s.Serve(ctx, up, link)
//
// and on the registrar:
//
//	jpy, _ := net.ListenPacket("udp", "[::]:7634")
//	rc, _ := joinproxy.NewRegistrarConn(jpy)
//	go coapServer.ServeDTLS(ctx, rc)
//
// Source key [JP] in doc comments: draft-ietf-anima-constrained-join-proxy
// (editor's copy, anima-wg/constrained-join-proxy; see
// ../shared/spec/cbrski.md §6), cited by section title because section
// numbers move between revisions.
package joinproxy
