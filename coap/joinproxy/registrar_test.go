package joinproxy

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

func newRegistrarConn(t *testing.T, e *env, opts ...Option) *RegistrarConn {
	t.Helper()
	c, err := NewRegistrarConn(e.listen(t, "reg:7634"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// read reads one datagram from c within the wait, or fails.
func read(t *testing.T, c *RegistrarConn) ([]byte, *PeerAddr) {
	t.Helper()
	b, from := recv(t, c, wait)
	a, ok := from.(*PeerAddr)
	if !ok {
		t.Fatalf("ReadFrom address %T, want *PeerAddr", from)
	}
	return b, a
}

func TestRegistrarConnPeers(t *testing.T) {
	e := newEnv(t)
	c := newRegistrarConn(t, e)
	jp := e.listen(t, "jp-up:5000")

	sendJPY(t, jp, Message{Header: []byte("h1"), Content: clientHello(1)}, "reg:7634")
	got, a1 := read(t, c)
	wantBytes(t, "content", got, clientHello(1))
	if a1.JoinProxy().String() != "jp-up:5000" || string(a1.Header()) != "h1" || a1.Network() != "jpy" {
		t.Fatalf("peer %v: jp %v header %q", a1, a1.JoinProxy(), a1.Header())
	}
	sendJPY(t, jp, Message{Header: []byte("h1"), Content: []byte("record")}, "reg:7634")
	_, again := read(t, c)
	sendJPY(t, jp, Message{Header: []byte("h2"), Content: clientHello(2)}, "reg:7634")
	_, a2 := read(t, c)
	if again.String() != a1.String() || a2.String() == a1.String() {
		t.Fatalf("peers %v, %v, %v: one header must be one peer", a1, again, a2)
	}

	// Writes go back wrapped, with the peer's header.
	if n, err := c.WriteTo([]byte("hvr"), a2); err != nil || n != 3 {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	b, from := recv(t, jp, wait)
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Header) != "h2" || string(m.Content) != "hvr" || from.String() != "reg:7634" {
		t.Fatalf("JPY %q/%q from %v", m.Header, m.Content, from)
	}
	if st := c.Stats(); st.Active != 2 || st.Up != 3 || st.Down != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRegistrarConnDrops(t *testing.T) {
	e := newEnv(t)
	c := newRegistrarConn(t, e, WithMaxDatagram(256))
	jp := e.listen(t, "jp-up:5000")
	for _, b := range [][]byte{
		mustHex("a0"),
		mustHex("8141"),
		mustEncode(t, Message{Header: []byte("new"), Content: []byte("not a ClientHello")}),
		mustEncode(t, Message{Header: []byte("big"), Content: make([]byte, 300)}),
	} {
		send(t, jp, b, "reg:7634")
	}
	sendJPY(t, jp, Message{Header: []byte("ok"), Content: clientHello(1)}, "reg:7634")
	_, a := read(t, c)
	if string(a.Header()) != "ok" {
		t.Fatalf("first datagram delivered is from %v", a)
	}
	st := c.Stats()
	if st.Dropped[ReasonMalformed] != 2 || st.Dropped[ReasonRejected] != 1 || st.Dropped[ReasonTooBig] != 1 || st.Active != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRegistrarConnBounds floods the conn with new peers: it keeps at most
// the configured number, per join proxy and in total, until they idle out.
func TestRegistrarConnBounds(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	c := newRegistrarConn(t, e, WithMaxPeers(3, 2), WithClock(clock.Now), WithPeerTimeout(time.Minute))
	jpA, jpB, jpC := e.listen(t, "jp-a:1"), e.listen(t, "jp-b:1"), e.listen(t, "jp-c:1")
	admitted := func(jp net.PacketConn, h string) bool {
		t.Helper()
		sendJPY(t, jp, Message{Header: []byte(h), Content: clientHello(0)}, "reg:7634")
		_, _, err := tryRecv(c, 100*time.Millisecond)
		return err == nil
	}
	for i := range 50 {
		sendJPY(t, jpA, Message{Header: []byte(fmt.Sprintf("flood-%d", i)), Content: clientHello(0)}, "reg:7634")
	}
	recv(t, c, wait)
	recv(t, c, wait)
	quiet(t, c, 50*time.Millisecond)
	if st := c.Stats(); st.Active != 2 || st.Dropped[ReasonPeerLimit] != 48 {
		t.Fatalf("after a flood from one join proxy: %+v", st)
	}
	if !admitted(jpB, "b1") {
		t.Fatal("another join proxy was refused")
	}
	if admitted(jpC, "c1") {
		t.Fatal("admitted beyond the total")
	}
	// Known peers still get through at the bound.
	sendJPY(t, jpA, Message{Header: []byte("flood-0"), Content: []byte("record")}, "reg:7634")
	recv(t, c, wait)

	clock.Advance(time.Minute)
	if !admitted(jpC, "c1") {
		t.Fatal("idle peers did not make room")
	}
	if st := c.Stats(); st.Active != 1 {
		t.Fatalf("after expiry %d peers, want 1", st.Active)
	}
}

func TestRegistrarConnWriteTo(t *testing.T) {
	e := newEnv(t)
	c := newRegistrarConn(t, e)
	for _, a := range []net.Addr{radio.Addr("jp:1"), nil, &PeerAddr{}} {
		_, err := c.WriteTo([]byte("x"), a)
		if !errors.Is(err, ErrNotPeer) {
			t.Fatalf("WriteTo(%v) = %v, want ErrNotPeer", a, err)
		}
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Fatalf("WriteTo error %T is not a *net.OpError", err)
		}
	}
	peer := newPeerAddr(radio.Addr("jp:1"), []byte{1})
	if _, err := c.WriteTo(make([]byte, MaxContent+1), peer); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized write = %v, want ErrTooLarge", err)
	}
	if !strings.HasPrefix(peer.String(), "jpy://jp:1/01") {
		t.Fatalf("peer string %q", peer)
	}
	if c.LocalAddr().String() != "reg:7634" {
		t.Fatalf("LocalAddr %v", c.LocalAddr())
	}
}
