package coap_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// A plain CoAP server and client on the in-memory radio; on a real network
// the PacketConns would come from net.ListenPacket.
func ExampleServer_ServeUDP() {
	network, err := radio.NewNetwork()
	if err != nil {
		panic(err)
	}
	defer network.Close()

	mux := coap.NewMux()
	mux.HandleFunc("/hello", func(context.Context, *coap.Request) (*coap.Response, error) {
		return coap.Content(coap.FormatText, []byte("hello, mote")), nil
	}, coap.Link{Attrs: [][2]string{{"rt", "example"}}})
	srv, err := coap.NewServer(mux)
	if err != nil {
		panic(err)
	}
	gw, err := network.Listen("gw:5683")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, gw) }()

	mote, err := network.Listen("mote-1:49152")
	if err != nil {
		panic(err)
	}
	c, err := coap.DialUDP(ctx, mote, radio.Addr("gw:5683"))
	if err != nil {
		panic(err)
	}
	resp, err := c.Get(ctx, "/hello", coap.FormatNone)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Code, string(resp.Payload))
	links, err := c.Get(ctx, coap.WellKnownCore, coap.FormatNone)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(links.Payload))

	_ = c.Close()
	_ = srv.Close()
	fmt.Println(<-done)
	// Output:
	// Content hello, mote
	// </hello>;rt=example
	// <nil>
}
