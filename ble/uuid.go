package ble

// Tumbler's onboarding GATT service. Pledges advertise ServiceUUID in
// their advertising data and host it as GATT server; the gateway, as GATT
// client, writes C1 and subscribes to indications on C2. The layout is
// Matter's BTP service (Matter Core 1.3 §4.18.4: service 0xFFF6, C1 write,
// C2 indicate), with UUIDs of its own: Tumbler's transport carries DTLS
// datagrams, not Matter messages, and a commissioner must not mistake a
// pledge for a Matter device (or the reverse). The UUIDs are random
// (version 4) and private to Tumbler; a device implementer copies them as
// they are.
const (
	// ServiceUUID identifies the Tumbler onboarding service, in
	// advertisements (Complete List of 128-bit Service UUIDs) and in GATT.
	ServiceUUID = "2b83674c-7527-4c40-80bc-e10d95b7a83a"
	// C1UUID is the characteristic the central writes (Write, with
	// response): BTP packets from the gateway to the pledge.
	C1UUID = "724efa79-50fc-4e16-a7a3-646660fa0ddf"
	// C2UUID is the characteristic the pledge indicates (Indicate; its
	// CCCD opens and closes the session): BTP packets from the pledge to
	// the gateway.
	C2UUID = "3c3ccad8-c0af-4ec8-9e65-1f0e87854b7d"
)
