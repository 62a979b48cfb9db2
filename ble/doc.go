// Package ble carries cBRSKI's DTLS datagrams between BLE pledges and the
// registrar. This comment is also the operator's guide (docs/ble.md is a
// copy).
//
// # Transport
//
// Pledges onboard over BLE with the same CoAP/DTLS state machine as over
// Thread or IP. Following ../shared/spec/thread-ble.md §4.5 (choice 1),
// datagrams travel over a BTP-style, message-preserving GATT transport
// (Matter Core 1.3 §4.18, package ble/btp): one DTLS datagram is one BTP
// message, of at most 1024 octets (cBRSKI's PMTU, coap.DefaultDTLSMTU).
// The alternatives do not fit: CoAP over GATT
// (draft-ietf-core-coap-over-gatt) has no DTLS binding, 512-octet values
// and 1-bit message IDs; IPSP
// (RFC 7668) needs debugfs-controlled kernel 6LoWPAN and is missing on
// phones; TCAT is Thread's TLS commissioning, not cBRSKI.
//
// # Roles
//
// The gateway is the BLE central, GATT client and BTP client; the pledge
// is the peripheral, GATT server and BTP server. Devices advertise and a
// gateway scans, as a Matter commissioner does with a commissionee: a
// central can hold links to many pledges at once, BlueZ's central role is
// the mature one in tinygo.org/x/bluetooth, and a pledge need not know the
// gateway. DTLS roles are independent of BLE roles: once BTP's handshake
// is done the session is symmetric, the pledge sends its ClientHello and
// the registrar's coap.Server answers as DTLS server, exactly as over UDP.
//
// # GATT service
//
// ServiceUUID (2b83674c-7527-4c40-80bc-e10d95b7a83a) is Tumbler's
// onboarding service. A pledge advertises it in its advertising data
// (Complete List of 128-bit Service Class UUIDs) while it wants onboarding
// and hosts it with two characteristics, as Matter's 0xFFF6 service does:
//
//	C1 724efa79-50fc-4e16-a7a3-646660fa0ddf  Write (with response): gateway -> pledge
//	C2 3c3ccad8-c0af-4ec8-9e65-1f0e87854b7d  Indicate:              pledge -> gateway
//
// The gateway writes the BTP handshake request to C1, enables indications
// on C2 (which opens the session; disabling them closes it) and receives
// the handshake response. The UUIDs are Tumbler's own so no Matter stack
// mistakes a pledge for a commissionee or the reverse. BTP's framing is
// unchanged, so captures read like Matter's BTP (Wireshark's btp-matter
// dissector, though, recognises only Matter's characteristic UUIDs).
//
// # Datagrams
//
// Central is the gateway's net.PacketConn: every BLE link is a peer whose
// Addr is the device address and a link number ("C0:FF:EE:00:00:01#7"), so
// each link carries its own DTLS association and a pledge that reconnects
// starts afresh. PeripheralConn is the pledge's PacketConn, whose only
// peer is the gateway. Both behave like UDP sockets: writes do not block,
// and datagrams that find a queue full or a link gone are dropped and
// counted (CentralStats, PeripheralStats); DTLS retransmits.
//
// # Parameters and bounds
//
//	BTP version               4 (Matter's)
//	segment size              ATT_MTU-3, at most 512 (20 at ATT_MTU 23)
//	window                    6 offered, 3..255 accepted, clamped to the offer
//	message limit             1024 octets (btp.WithMaxMessage)
//	handshake timeout         5 s  (BTP_CONN_RSP_TIMEOUT)
//	ack timeout               15 s (BTP_ACK_TIMEOUT)
//	stand-alone ack delay     2.5 s (CHIP; the spec allows up to 5 s)
//	idle timeout              30 s without message data (BTP_CONN_IDLE_TIMEOUT)
//	sessions per Central      64 (WithMaxLinks)
//	datagrams waiting to be read  256 per Central or PeripheralConn (WithQueueLen)
//	messages queued per session   16 each way (btp.WithQueueLen)
//
// An idle session exchanges one stand-alone acknowledgement per 2.5 s in
// alternating directions; a peer that stops answering is detected by the
// ack timeout. A protocol violation (duplicate, gap, window overflow,
// oversized message, bad acknowledgement) ends the session; Reason names
// it in CentralStats.Ended.
//
// # Wiring
//
// Gateway: make a Central, feed it links and serve DTLS on it:
//
//	central, _ := ble.NewCentral(ble.WithLogger(log))
//	src, _ := bluez.New("hci0", bluez.WithLogger(log)) // -tags bluez; or a *sim.Network
//	eg.Go(func() error { return central.Serve(ctx, src) })
//	eg.Go(func() error { return gw.ServeDTLS(ctx, central) }) // closes central when done
//
// Testbed: one sim.Network is the air; the gateway's Central serves it and
// each mote listens on it, unchanged:
//
//	air, _ := sim.NewNetwork(sim.WithSeed(seed), sim.WithATTMTU(23, 247), sim.WithLatency(15*time.Millisecond, 15*time.Millisecond))
//	eg.Go(func() error { return central.Serve(ctx, air) })
//	m, _ := mote.New(id, mote.Config{Listen: air.Listen(serial), ...})
//	m.Onboard(ctx, air.CentralAddr())
//
// The simulator models GATT as it is: values are never lost or reordered
// on a live link; loss is delay (latency and jitter per operation, both
// ways) and connection drops (sim.WithDropRate), after which the mote
// opens a new link and DTLS session. Pledges and MTUs are seeded.
//
// # Running on BlueZ
//
// The BlueZ backend (package ble/bluez) is compiled only with the build
// tag bluez on Linux. It speaks to bluetoothd over the system D-Bus in pure
// Go (no cgo):
//
//	CGO_ENABLED=0 GOARCH=arm64 go build -tags bluez ./cmd/tumbler
//
// Requirements: BlueZ 5.48 or later (with 5.62 or later the gateway learns
// the ATT_MTU and puts it in the handshake request; with older ones it
// sends 0 and the pledge uses its own view of the ATT_MTU, or 23),
// bluetoothd running, the adapter powered (bluetoothctl power on),
// and a D-Bus policy that lets the gateway's user talk to org.bluez (on
// Debian, membership of the bluetooth group). No other program may hold
// the adapter in HCI user-channel mode. The scanner connects to every
// device advertising ServiceUUID, one link per device, and ignores a
// device whose connection or service discovery failed for 10 s. btmon
// shows the ATT traffic. Without hardware, a virtual controller (BlueZ's
// btvirt, or Google's bumble on /dev/vhci; both need the hci_vhci module
// and privileges) exercises the same path in a privileged CI container.
//
// Interoperability notes: the handshake packets start 0x65 0x6c as in the
// specification, current CHIP, matter.js and Wireshark; older CHIP code
// wrote 'n' 'l'. The handshake request lists versions in CHIP's nibble
// order (entry 2i is the low nibble of octet i).
package ble
