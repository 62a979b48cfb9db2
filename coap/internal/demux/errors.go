package demux

import "net"

// ErrClosed is returned by Accept after Close, and wrapped by a Peer's
// methods after the peer closed. It is net.ErrClosed, which pion and
// go-coap treat as an orderly end.
var ErrClosed = net.ErrClosed
