package ble_test

import (
	"context"
	"fmt"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/sim"
)

// The gateway's Central and a pledge on simulated BLE: the pledge's
// datagram arrives from the link's address, and the answer goes back on
// the same link. A DTLS server and client run on the two PacketConns the
// same way.
func Example() {
	ctx := context.Background()
	air, _ := sim.NewNetwork(sim.WithATTMTU(23, 23))
	defer air.Close()
	central, _ := ble.NewCentral()
	go central.Serve(ctx, air)
	defer central.Close()

	pc, err := air.Pledge(ctx, "pledge-17")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	_, _ = pc.WriteTo([]byte("ClientHello"), air.CentralAddr())

	buf := make([]byte, 1024)
	n, from, _ := central.ReadFrom(buf)
	fmt.Printf("gateway got %q from %v\n", buf[:n], from)
	_, _ = central.WriteTo([]byte("ServerHello"), from)

	n, from, _ = pc.ReadFrom(buf)
	fmt.Printf("pledge got %q from %v over %d-octet segments\n", buf[:n], from, pc.Params().SegmentSize)
	// Output:
	// gateway got "ClientHello" from pledge-17#1
	// pledge got "ServerHello" from gateway over 20-octet segments
}
