package joinproxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// startStateless runs a stateless proxy with upstream "jp-up:5000" toward
// the registrar's JPY port "reg:7634".
func startStateless(t *testing.T, e *env, links []net.PacketConn, opts ...Option) *Stateless {
	t.Helper()
	p, err := NewStateless(radio.Addr("reg:7634"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	up := e.listen(t, "jp-up:5000")
	serve(t, func(ctx context.Context) error { return p.Serve(ctx, up, links...) })
	return p
}

// recvJPY reads one JPY message at the registrar.
func recvJPY(t *testing.T, reg net.PacketConn) (Message, net.Addr) {
	t.Helper()
	b, from := recv(t, reg, wait)
	m, err := Decode(b)
	if err != nil {
		t.Fatalf("registrar got %x: %v", b, err)
	}
	return m, from
}

func sendJPY(t *testing.T, from net.PacketConn, m Message, to string) {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	send(t, from, b, to)
}

func TestStatelessWrapsAndUnwraps(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:7634")
	p := startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")})
	a, b := e.listen(t, "pa:1001"), e.listen(t, "pb:1001")

	hello := clientHello(1)
	send(t, a, hello, "jp:8485")
	ma, from := recvJPY(t, reg)
	wantBytes(t, "content", ma.Content, hello)
	if from.String() != "jp-up:5000" {
		t.Fatalf("JPY from %v, want the one fixed upstream socket", from)
	}
	if len(ma.Header) > 32 {
		t.Fatalf("header %d bytes, the draft asks for at most 32", len(ma.Header))
	}
	send(t, a, []byte("again"), "jp:8485")
	ma2, _ := recvJPY(t, reg)
	wantBytes(t, "same pledge, same header", ma2.Header, ma.Header)
	send(t, b, []byte("b"), "jp:8485")
	mb, from2 := recvJPY(t, reg)
	if bytes.Equal(mb.Header, ma.Header) || from2.String() != from.String() {
		t.Fatalf("pledge b: header %x (a: %x), from %v", mb.Header, ma.Header, from2)
	}

	// Replies find their pledges; a reply with extra elements too.
	sendJPY(t, reg, Message{Header: mb.Header, Content: []byte("to b")}, "jp-up:5000")
	got, src := recv(t, b, wait)
	wantBytes(t, "reply to b", got, []byte("to b"))
	if src.String() != "jp:8485" {
		t.Fatalf("reply from %v, want the join port", src)
	}
	extra := append([]byte{0x83}, mustEncode(t, Message{Header: ma.Header, Content: []byte("to a")})[1:]...)
	extra = append(extra, 0xf6) // a third element, null
	send(t, reg, extra, "jp-up:5000")
	got, _ = recv(t, a, wait)
	wantBytes(t, "reply to a", got, []byte("to a"))
	quiet(t, b, 50*time.Millisecond)

	if st := p.Stats(); st.Up != 3 || st.Down != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func mustEncode(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStatelessDropsTampered: every single-bit change of a header is
// dropped silently and counted; the untouched header still works.
func TestStatelessDropsTampered(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:7634")
	p := startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")})
	a := e.listen(t, "pa:1")
	send(t, a, []byte("x"), "jp:8485")
	m, _ := recvJPY(t, reg)

	bits := len(m.Header) * 8
	for i := range bits {
		h := bytes.Clone(m.Header)
		h[i/8] ^= 1 << (i % 8)
		sendJPY(t, reg, Message{Header: h, Content: []byte("forged")}, "jp-up:5000")
	}
	sendJPY(t, reg, Message{Header: m.Header, Content: []byte("genuine")}, "jp-up:5000")
	got, _ := recv(t, a, wait)
	wantBytes(t, "first datagram at the pledge", got, []byte("genuine"))
	if st := p.Stats(); st.Dropped[ReasonBadHeader] != uint64(bits) || st.Down != 1 {
		t.Fatalf("stats %+v, want %d bad headers", st, bits)
	}
}

func TestStatelessDropsMalformedAndStrangers(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:7634")
	p := startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")}, WithMaxDatagram(256))
	a := e.listen(t, "pa:1")
	send(t, a, []byte("x"), "jp:8485")
	m, _ := recvJPY(t, reg)

	for _, bad := range [][]byte{
		{},
		mustHex("a0"),
		mustHex("814101"),
		append(mustEncode(t, m), 0),
		mustHex("82" + "4101"), // truncated
	} {
		send(t, reg, bad, "jp-up:5000")
	}
	// The right header, from someone other than the registrar.
	stranger := e.listen(t, "evil:1")
	sendJPY(t, stranger, Message{Header: m.Header, Content: []byte("spoof")}, "jp-up:5000")
	// Content above the bound, from the registrar.
	sendJPY(t, reg, Message{Header: m.Header, Content: make([]byte, 300)}, "jp-up:5000")
	// And from the pledge.
	send(t, a, make([]byte, 300), "jp:8485")

	sendJPY(t, reg, Message{Header: m.Header, Content: []byte("ok")}, "jp-up:5000")
	got, _ := recv(t, a, wait)
	wantBytes(t, "first datagram at the pledge", got, []byte("ok"))
	quiet(t, reg, 50*time.Millisecond)
	st := p.Stats()
	if st.Dropped[ReasonMalformed] != 5 || st.Dropped[ReasonNotRegistrar] != 1 || st.Dropped[ReasonTooBig] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStatelessKeyRotation: a reply in flight across one rotation is still
// delivered; one sealed two keys ago is not.
func TestStatelessKeyRotation(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	reg := e.listen(t, "reg:7634")
	p := startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")},
		WithClock(clock.Now), WithKeyRotation(time.Hour), WithRand(seededRand(3)))
	a := e.listen(t, "pa:1")

	send(t, a, []byte("before"), "jp:8485")
	m0, _ := recvJPY(t, reg)
	clock.Advance(time.Hour + time.Second)
	send(t, a, []byte("after"), "jp:8485")
	m1, _ := recvJPY(t, reg)
	if bytes.Equal(m0.Header, m1.Header) {
		t.Fatal("header unchanged across a rotation")
	}
	sendJPY(t, reg, Message{Header: m0.Header, Content: []byte("in flight")}, "jp-up:5000")
	got, _ := recv(t, a, wait)
	wantBytes(t, "reply under the previous key", got, []byte("in flight"))

	clock.Advance(time.Hour + time.Second)
	sendJPY(t, reg, Message{Header: m0.Header, Content: []byte("stale")}, "jp-up:5000")
	sendJPY(t, reg, Message{Header: m1.Header, Content: []byte("previous")}, "jp-up:5000")
	got, _ = recv(t, a, wait)
	wantBytes(t, "reply after two rotations", got, []byte("previous"))
	if st := p.Stats(); st.KeyRotations != 2 || st.Dropped[ReasonBadHeader] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStatelessDeterministic: with the same randomness, two proxies make
// the same header for the same pledge (a testbed run replays).
func TestStatelessDeterministic(t *testing.T) {
	var headers [][]byte
	for range 2 {
		e := newEnv(t)
		reg := e.listen(t, "reg:7634")
		startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")}, WithRand(seededRand(9)))
		send(t, e.listen(t, "pa:1"), []byte("x"), "jp:8485")
		m, _ := recvJPY(t, reg)
		headers = append(headers, m.Header)
	}
	wantBytes(t, "second run's header", headers[1], headers[0])
}

// TestStatelessLinks: replies go out on the interface the pledge came in on.
func TestStatelessLinks(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:7634")
	startStateless(t, e, []net.PacketConn{e.listen(t, "jp0:8485"), e.listen(t, "jp1:8485")})
	a := e.listen(t, "pa:1")
	send(t, a, []byte("via 1"), "jp1:8485")
	m, _ := recvJPY(t, reg)
	sendJPY(t, reg, Message{Header: m.Header, Content: []byte("back")}, "jp-up:5000")
	_, from := recv(t, a, wait)
	if from.String() != "jp1:8485" {
		t.Fatalf("reply via %v, want jp1:8485", from)
	}
}

func TestStatelessUnaddressable(t *testing.T) {
	e := newEnv(t)
	reg := e.listen(t, "reg:7634")
	p := startStateless(t, e, []net.PacketConn{e.listen(t, "jp:8485")})
	long := e.listen(t, string(bytes.Repeat([]byte("m"), MaxLinkAddr))+":1")
	send(t, long, []byte("x"), "jp:8485")
	quiet(t, reg, 50*time.Millisecond)
	if st := p.Stats(); st.Dropped[ReasonUnaddressable] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatelessServeArgs(t *testing.T) {
	e := newEnv(t)
	p, err := NewStateless(radio.Addr("reg:7634"))
	if err != nil {
		t.Fatal(err)
	}
	link := e.listen(t, "jp:1")
	if err := p.Serve(testContext(t), nil, link); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Serve without upstream = %v", err)
	}
	if _, err := link.WriteTo([]byte{0}, radio.Addr("x:1")); err == nil {
		t.Fatal("a refused Serve left its link open")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Serve(testContext(t), e.listen(t, "up:1"), e.listen(t, "jp:2")); !errors.Is(err, ErrServing) {
		t.Fatalf("Serve after Close = %v, want ErrServing", err)
	}
}
