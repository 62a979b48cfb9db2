package oscore_test

import (
	"context"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/oscore"
)

// The contexts of RFC 8613 Appendix C.1.
func exampleContexts() (client, server *oscore.Context) {
	secret := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	salt := []byte{0x9e, 0x7c, 0xa9, 0x22, 0x23, 0x78, 0x63, 0x40}
	client, err := oscore.NewContext(oscore.Params{MasterSecret: secret, MasterSalt: salt, SenderID: []byte{}, RecipientID: []byte{1}},
		oscore.WithSenderSequence(20))
	if err != nil {
		panic(err)
	}
	server, err = oscore.NewContext(oscore.Params{MasterSecret: secret, MasterSalt: salt, SenderID: []byte{1}, RecipientID: []byte{}})
	if err != nil {
		panic(err)
	}
	return client, server
}

// Protecting the request of RFC 8613 Appendix C.4 and its response (C.7).
func ExampleContext_ProtectRequest() {
	client, server := exampleContexts()
	req := oscore.Message{
		Type: message.Confirmable, MessageID: 0x5d1f, Token: []byte{0, 0, 0x39, 0x74}, Code: codes.GET,
		Options: message.Options{{ID: message.URIHost, Value: []byte("localhost")}, {ID: message.URIPath, Value: []byte("tv1")}},
	}
	out, ex, _ := client.ProtectRequest(req)
	fmt.Printf("outer %v, ciphertext %x\n", out.Code, out.Payload)

	dec, sex, _ := server.UnprotectRequest(out)
	fmt.Printf("server sees %v, kid %x, PIV %x\n", dec.Code, sex.KID(), sex.PartialIV())

	resp, _ := server.ProtectResponse(oscore.Message{Type: message.Acknowledgement, MessageID: 0x5d1f,
		Token: out.Token, Code: codes.Content, Payload: []byte("Hello World!")}, sex, false)
	got, _ := client.UnprotectResponse(resp, ex)
	fmt.Printf("outer %v, client sees %v %q\n", resp.Code, got.Code, got.Payload)
	// Output:
	// outer POST, ciphertext 612f1092f1776f1c1668b3825e
	// server sees GET, kid , PIV 14
	// outer Changed, client sees Content "Hello World!"
}

type oneContext struct{ c *oscore.Context }

func (s oneContext) Lookup(_ context.Context, kid, _ []byte) (*oscore.Context, error) {
	if string(kid) != string(s.c.RecipientID()) {
		return nil, oscore.ErrContextNotFound
	}
	return s.c, nil
}

type direct struct{ h coap.Handler }

func (d direct) Do(ctx context.Context, r *coap.Request) (*coap.Response, error) {
	return d.h.ServeCoAP(ctx, r)
}

// A server Handler in front of a check-in resource and a Client talking to
// it without a network.
func ExampleNewHandler() {
	client, server := exampleContexts()
	checkin := coap.HandlerFunc(func(ctx context.Context, r *coap.Request) (*coap.Response, error) {
		ex, _ := oscore.ExchangeFrom(ctx)
		// Store the check-in and ex.Seq() in one transaction here, then:
		ex.MarkDurable()
		return coap.Changed(coap.FormatNone, []byte("ok "+r.Path)), nil
	})
	h, err := oscore.NewHandler(oneContext{server}, checkin)
	if err != nil {
		panic(err)
	}
	resp, err := oscore.Client{Ctx: client}.Do(context.Background(), direct{h},
		&coap.Request{Method: codes.POST, Path: "/c", ContentFormat: coap.FormatNone, Accept: coap.FormatNone})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Code, string(resp.Payload))
	// Output: Changed ok /c
}
