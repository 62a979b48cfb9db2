package oscore

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func optionIDs(opts message.Options) []message.OptionID {
	ids := make([]message.OptionID, len(opts))
	for i, o := range opts {
		ids[i] = o.ID
	}
	return ids
}

func TestOptionClasses(t *testing.T) {
	client, server := pair(t, nil, nil)
	all := message.Options{
		{ID: 1, Value: []byte{1}},          // If-Match: E
		{ID: 3, Value: []byte("gw.local")}, // Uri-Host: U
		{ID: 4, Value: []byte{2}},          // ETag: E
		{ID: 5, Value: []byte{}},           // If-None-Match: E
		{ID: 7, Value: []byte{0x16, 0x33}}, // Uri-Port: U
		{ID: 11, Value: []byte("c")},       // Uri-Path: E
		{ID: 12, Value: []byte{60}},        // Content-Format: E
		{ID: 14, Value: []byte{30}},        // Max-Age: E (inner)
		{ID: 15, Value: []byte("a=1")},     // Uri-Query: E
		{ID: 17, Value: []byte{60}},        // Accept: E
		{ID: 23, Value: []byte{0x02}},      // Block2: E (inner block-wise)
		{ID: 27, Value: []byte{0x0a}},      // Block1: E
		{ID: 28, Value: []byte{0}},         // Size2: E
		{ID: 39, Value: []byte("coap")},    // Proxy-Scheme: U
		{ID: 60, Value: []byte{0x10}},      // Size1: E
		{ID: 252, Value: []byte{9, 9}},     // Echo: E
		{ID: 258, Value: []byte{26}},       // No-Response: E
		{ID: 292, Value: []byte{7}},        // Request-Tag: E
		{ID: 65000, Value: []byte("x")},    // unknown: E
	}
	m := getRequest()
	m.Code = codes.POST
	m.Options = all
	m.Payload = []byte("body")
	out, _, err := client.ProtectRequest(m)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := optionIDs(out.Options), []message.OptionID{3, 7, 9, 39}; !slices.Equal(got, want) {
		t.Errorf("outer options %v, want %v", got, want)
	}
	if out.Code != codes.POST {
		t.Errorf("outer code %v, want POST", out.Code)
	}
	dec, _, err := server.UnprotectRequest(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(dec.Options) != len(all) {
		t.Fatalf("decrypted %v, want %v", optionIDs(dec.Options), optionIDs(all))
	}
	for i := range all {
		if dec.Options[i].ID != all[i].ID || !bytes.Equal(dec.Options[i].Value, all[i].Value) {
			t.Errorf("option %d = %v, want %v", i, dec.Options[i], all[i])
		}
	}
	if dec.Code != codes.POST || string(dec.Payload) != "body" {
		t.Errorf("decrypted %v %q", dec.Code, dec.Payload)
	}
}

// TestOuterClassEDiscarded: outer instances of Class E options (a proxy's
// Block2, Max-Age, a forged Uri-Path) are discarded (§8.2 step 1) and the
// message still verifies.
func TestOuterClassEDiscarded(t *testing.T) {
	client, server := pair(t, nil, nil)
	out, _, err := client.ProtectRequest(getRequest())
	if err != nil {
		t.Fatal(err)
	}
	out = cloneMessage(out)
	out.Options = out.Options.Add(message.Option{ID: 23, Value: []byte{0x06}})
	out.Options = out.Options.Add(message.Option{ID: 11, Value: []byte("admin")})
	out.Options = out.Options.Add(message.Option{ID: 14, Value: []byte{}})
	out.Code = codes.PUT
	dec, _, err := server.UnprotectRequest(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := optionIDs(dec.Options), []message.OptionID{3, 11}; !slices.Equal(got, want) {
		t.Fatalf("options %v, want %v", got, want)
	}
	if v, _ := optionValue(dec.Options, 11); string(v) != "tv1" || dec.Code != codes.GET {
		t.Fatalf("decrypted %v %q", dec.Code, v)
	}
}

func TestResponseMaxAgeInner(t *testing.T) {
	client, server := pair(t, nil, nil)
	req, cex, _ := client.ProtectRequest(getRequest())
	_, sex, err := server.UnprotectRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	r := helloResponse()
	r.Options = message.Options{{ID: 14, Value: []byte{60}}}
	out, err := server.ProtectResponse(r, sex, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := optionIDs(out.Options); !slices.Equal(got, []message.OptionID{9}) {
		t.Fatalf("outer options %v, want only OSCORE", got)
	}
	dec, err := client.UnprotectResponse(out, cex)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := optionValue(dec.Options, 14); !ok || !bytes.Equal(v, []byte{60}) {
		t.Fatalf("inner Max-Age lost: %v", dec.Options)
	}
}

func TestProxyURIDecomposition(t *testing.T) {
	tests := []struct {
		name      string
		uri       string
		wantOuter string
		wantPath  []string
		wantQuery []string
	}{
		{"RFC 8613 §4.1.3.3 example", "coap://example.com/resource?q=1", "coap://example.com", []string{"resource"}, []string{"q=1"}},
		{"port and escapes", "coaps://[2001:db8::1]:5684/a%2Fb/c?x=%26&y", "coaps://[2001:db8::1]:5684", []string{"a/b", "c"}, []string{"x=&", "y"}},
		{"no path", "coap://example.com", "coap://example.com", nil, nil},
		{"trailing slash", "coap://example.com/a/", "coap://example.com", []string{"a", ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t, nil, nil)
			m := Message{Code: codes.GET, Type: message.Confirmable, Options: message.Options{{ID: optProxyURI, Value: []byte(tt.uri)}}}
			out, _, err := client.ProtectRequest(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := optionIDs(out.Options); !slices.Equal(got, []message.OptionID{9, optProxyURI}) {
				t.Fatalf("outer options %v", got)
			}
			if v, _ := optionValue(out.Options, optProxyURI); string(v) != tt.wantOuter {
				t.Errorf("outer Proxy-Uri %q, want %q", v, tt.wantOuter)
			}
			dec, _, err := server.UnprotectRequest(out)
			if err != nil {
				t.Fatal(err)
			}
			var path, query []string
			for _, o := range dec.Options {
				switch o.ID {
				case optURIPath:
					path = append(path, string(o.Value))
				case optURIQuery:
					query = append(query, string(o.Value))
				}
			}
			if !slices.Equal(path, tt.wantPath) || !slices.Equal(query, tt.wantQuery) {
				t.Errorf("inner path %q query %q, want %q %q", path, query, tt.wantPath, tt.wantQuery)
			}
		})
	}
}

func TestProxyURIErrors(t *testing.T) {
	tests := []struct {
		name string
		opts message.Options
	}{
		{"relative", message.Options{{ID: optProxyURI, Value: []byte("/a/b")}}},
		{"fragment", message.Options{{ID: optProxyURI, Value: []byte("coap://h/a#f")}}},
		{"with Uri-Path", message.Options{{ID: optURIPath, Value: []byte("x")}, {ID: optProxyURI, Value: []byte("coap://h/a")}}},
		{"repeated", message.Options{{ID: optProxyURI, Value: []byte("coap://h/a")}, {ID: optProxyURI, Value: []byte("coap://h/b")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, _ := pair(t, nil, nil)
			if _, _, err := client.ProtectRequest(Message{Code: codes.GET, Options: tt.opts}); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error = %v, want ErrInvalidMessage", err)
			}
			if client.SenderSequence() != 0 {
				t.Error("sequence number used by a refused request")
			}
		})
	}
}

func TestObserve(t *testing.T) {
	client, server := pair(t, nil, nil)
	reg := getRequest()
	reg.Options = reg.Options.Add(message.Option{ID: optObserve, Value: []byte{}}) // register
	out, cex, err := client.ProtectRequest(reg)
	if err != nil {
		t.Fatal(err)
	}
	if out.Code != codes.FETCH {
		t.Fatalf("outer code %v, want FETCH (§4.1.3.5)", out.Code)
	}
	if !hasOption(out.Options, optObserve) {
		t.Fatal("no outer Observe")
	}
	_, sex, err := server.UnprotectRequest(out)
	if err != nil {
		t.Fatal(err)
	}
	if !sex.Observe() || !cex.Observe() {
		t.Fatal("exchange not marked as observation")
	}

	notify := func(obs uint32, withPIV bool) Message {
		t.Helper()
		r := helloResponse()
		r.Options = message.Options{{ID: optObserve, Value: appendUint(nil, obs)}}
		n, err := server.ProtectResponse(r, sex, withPIV)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := notify(7, false)
	if first.Code != codes.Content {
		t.Fatalf("notification outer code %v, want 2.05", first.Code)
	}
	if v, ok := optionValue(first.Options, optMaxAge); !ok || len(v) != 0 {
		t.Error("notification without outer Max-Age 0")
	}
	if v, _ := optionValue(first.Options, optObserve); !bytes.Equal(v, []byte{7}) {
		t.Errorf("outer Observe %x, want 07", v)
	}
	second := notify(8, false) // Partial IV forced: a nonce serves one plaintext
	if ov, _, _ := findOSCORE(second.Options); len(ov) < 2 {
		t.Fatalf("second notification without Partial IV: option %x", ov)
	}
	third := notify(9, true)

	if _, err := client.UnprotectResponse(first, cex); err != nil {
		t.Fatalf("first notification: %v", err)
	}
	if _, err := client.UnprotectResponse(first, cex); !errors.Is(err, ErrReplay) {
		t.Fatalf("second notification without PIV: %v, want ErrReplay", err)
	}
	d3, err := client.UnprotectResponse(third, cex)
	if err != nil {
		t.Fatalf("third notification: %v", err)
	}
	if v, _ := optionValue(d3.Options, optObserve); !bytes.Equal(v, []byte{1}) { // server PIV 1
		t.Errorf("Observe value %x, want the Partial IV's low bytes 01", v)
	}
	if _, err := client.UnprotectResponse(second, cex); !errors.Is(err, ErrReplay) {
		t.Fatalf("older notification after newer: %v, want ErrReplay", err)
	}
	if _, err := client.UnprotectResponse(third, cex); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed notification: %v, want ErrReplay", err)
	}
	// The final non-notification response (e.g. the resource is gone).
	final, err := server.ProtectResponse(Message{Code: codes.NotFound}, sex, false)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := client.UnprotectResponse(final, cex); err != nil || d.Code != codes.NotFound {
		t.Fatalf("final response: %v %v", d.Code, err)
	}
}

func TestObserveInResponseToPlainRequest(t *testing.T) {
	client, server := pair(t, nil, nil)
	req, cex, _ := client.ProtectRequest(getRequest())
	_, sex, err := server.UnprotectRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	r := helloResponse()
	r.Options = message.Options{{ID: optObserve, Value: []byte{1}}}
	if _, err := server.ProtectResponse(r, sex, false); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("server: %v, want ErrInvalidMessage", err)
	}
	sex.observe = true // a misbehaving server
	n, err := server.ProtectResponse(r, sex, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UnprotectResponse(n, cex); !errors.Is(err, ErrMalformed) {
		t.Fatalf("client: %v, want ErrMalformed (§4.1.3.5.2)", err)
	}
}
