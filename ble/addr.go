package ble

import "strconv"

// Addr is the address of a BLE peer on a PacketConn. Device is the peer's
// BLE address (a MAC such as "C0:FF:EE:00:00:01", or a simulated name).
// On the gateway's Central, Link numbers the BLE connections, so each
// connection is a peer of its own and carries its own DTLS association: a
// pledge that reconnects starts a fresh one (one DTLS association per BLE
// link). Link is 0 on a PeripheralConn, whose only peer is the central.
type Addr struct {
	Device string
	Link   uint64
}

// Network is "ble".
func (a Addr) Network() string { return "ble" }

// String is Device, followed by "#" and the link number if there is one.
func (a Addr) String() string {
	if a.Link == 0 {
		return a.Device
	}
	return a.Device + "#" + strconv.FormatUint(a.Link, 10)
}
