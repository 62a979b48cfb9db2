package joinproxy

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// networks answers for links 0..n-1: the first is a UDP link, the others
// radio links.
func networks(n int) func(int) (string, bool) {
	return func(i int) (string, bool) {
		switch {
		case i == 0:
			return "udp", true
		case i < n:
			return "radio", true
		}
		return "", false
	}
}

func testKeyring(t testing.TB, clock *fakeClock, seed uint64) *keyring {
	t.Helper()
	k, err := newKeyring(seededRand(seed), clock.Now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHeaderRoundTrip(t *testing.T) {
	k := testKeyring(t, newFakeClock(), 1)
	for _, tc := range []struct {
		name string
		link int
		addr net.Addr
		size int // header bytes
	}{
		{"ipv4", 0, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 49152}, 24},
		{"ipv6 link-local", 0, &net.UDPAddr{IP: net.ParseIP("fe80::1234:5678"), Port: 45965}, 28},
		// The draft's 32-byte bound holds for a 4-byte interface name.
		{"ipv6 link-local zone", 0, &net.UDPAddr{IP: net.ParseIP("fe80::1234:5678"), Port: 45965, Zone: "eth0"}, 32},
		{"ipv6 global", 0, &net.UDPAddr{IP: net.ParseIP("2001:db8::52"), Port: 5684}, 36},
		{"radio", 1, radio.Addr("mote-17:49152"), 31},
		{"last link", 255, radio.Addr("m:1"), 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := k.seal(tc.link, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != tc.size {
				t.Fatalf("header %d bytes, want %d", len(h), tc.size)
			}
			again, err := k.seal(tc.link, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, "second seal (the registrar keys on it)", again, h)
			link, addr, err := k.open(h, networks(256))
			if err != nil {
				t.Fatal(err)
			}
			if link != tc.link || addr.String() != tc.addr.String() {
				t.Fatalf("opened link %d %v, want %d %v", link, addr, tc.link, tc.addr)
			}
			if _, isUDP := tc.addr.(*net.UDPAddr); isUDP {
				if _, ok := addr.(*net.UDPAddr); !ok {
					t.Fatalf("opened %T, want *net.UDPAddr", addr)
				}
			} else if addr.Network() != "radio" {
				t.Fatalf("opened network %q, want the link's", addr.Network())
			}
		})
	}
}

func TestHeaderDistinctPerPledge(t *testing.T) {
	k := testKeyring(t, newFakeClock(), 1)
	seen := map[string]string{}
	for _, a := range []net.Addr{
		radio.Addr("m:1"), radio.Addr("m:2"), radio.Addr("n:1"),
		&net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1}, &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 2},
	} {
		for link := range 2 {
			h, err := k.seal(link, a)
			if err != nil {
				t.Fatal(err)
			}
			id := a.String() + "@" + string(rune('0'+link))
			if prev, dup := seen[string(h)]; dup {
				t.Fatalf("%s and %s share a header", prev, id)
			}
			seen[string(h)] = id
		}
	}
}

func TestHeaderUnaddressable(t *testing.T) {
	k := testKeyring(t, newFakeClock(), 1)
	for _, tc := range []struct {
		name string
		link int
		addr net.Addr
	}{
		{"nil", 0, nil},
		{"port 0", 0, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1)}},
		{"no IP", 0, &net.UDPAddr{Port: 1}},
		{"long zone", 0, &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: strings.Repeat("z", maxZone+1)}},
		{"long link address", 0, radio.Addr(strings.Repeat("a", MaxLinkAddr+1))},
		{"link 256", 256, radio.Addr("m:1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := k.seal(tc.link, tc.addr); !errors.Is(err, ErrUnaddressable) {
				t.Fatalf("seal = %v, want ErrUnaddressable", err)
			}
		})
	}
}

// TestHeaderTampered flips every bit of a header, truncates and extends
// it: none of it opens.
func TestHeaderTampered(t *testing.T) {
	k := testKeyring(t, newFakeClock(), 1)
	h, err := k.seal(0, &net.UDPAddr{IP: net.ParseIP("fe80::1234:5678"), Port: 45965})
	if err != nil {
		t.Fatal(err)
	}
	var bad [][]byte
	for i := range len(h) * 8 {
		x := bytes.Clone(h)
		x[i/8] ^= 1 << (i % 8)
		bad = append(bad, x)
	}
	for n := range len(h) {
		bad = append(bad, h[:n])
	}
	bad = append(bad, append(bytes.Clone(h), 0), mustHex("d01914bcc376a88ffecc50ca6017b0c1"))
	for _, x := range bad {
		if _, _, err := k.open(x, networks(1)); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("open(%x) = %v, want ErrBadHeader", x, err)
		}
	}
	// Another proxy's key does not open it either.
	other := testKeyring(t, newFakeClock(), 2)
	if _, _, err := other.open(h, networks(1)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("other key: %v", err)
	}
}

func TestHeaderUnknownLink(t *testing.T) {
	k := testKeyring(t, newFakeClock(), 1)
	h, err := k.seal(3, radio.Addr("m:1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.open(h, networks(3)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("open for a link that is gone = %v, want ErrBadHeader", err)
	}
}

// TestKeyRotation: a header opens under the current key and, after one
// rotation, under the previous one; after two it does not.
func TestKeyRotation(t *testing.T) {
	clock := newFakeClock()
	k := testKeyring(t, clock, 1)
	pledge := radio.Addr("m:1")
	h0, err := k.seal(0, pledge)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	h1, err := k.seal(0, pledge)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(h0, h1) || k.Rotations() != 1 {
		t.Fatalf("no rotation after the period (rotations %d)", k.Rotations())
	}
	for _, h := range [][]byte{h0, h1} {
		if _, a, err := k.open(h, networks(1)); err != nil || a.String() != "m:1" {
			t.Fatalf("open after one rotation: %v %v", a, err)
		}
	}
	clock.Advance(time.Hour)
	if _, _, err := k.open(h0, networks(1)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("two generations old: %v, want ErrBadHeader", err)
	}
	if _, _, err := k.open(h1, networks(1)); err != nil {
		t.Fatalf("previous key: %v", err)
	}
	// Idle for more than two periods: neither old key survives.
	clock.Advance(3 * time.Hour)
	if _, _, err := k.open(h1, networks(1)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("after a long idle: %v, want ErrBadHeader", err)
	}
	if k.Rotations() != 3 {
		t.Fatalf("rotations %d, want 3", k.Rotations())
	}
}

func TestKeyringRandFailure(t *testing.T) {
	if _, err := newKeyring(bytes.NewReader(make([]byte, 5)), time.Now, time.Hour); err == nil {
		t.Fatal("a short rand made a key")
	}
	clock := newFakeClock()
	k, err := newKeyring(bytes.NewReader(make([]byte, 33)), clock.Now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := k.seal(0, radio.Addr("m:1")); err == nil || errors.Is(err, ErrUnaddressable) {
		t.Fatalf("seal without randomness for the new key = %v", err)
	}
}

// FuzzHeader asserts non-malleability: whatever bytes open under the key
// are exactly the header the proxy itself makes for the address they name.
// So a tampered header never decrypts to anything.
func FuzzHeader(f *testing.F) {
	clock := newFakeClock()
	k := testKeyring(f, clock, 7)
	for _, a := range []net.Addr{
		radio.Addr("m:1"),
		&net.UDPAddr{IP: net.ParseIP("fe80::1234:5678"), Port: 45965, Zone: "eth0"},
		&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5683},
	} {
		h, err := k.seal(0, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(h)
		x := bytes.Clone(h)
		x[len(x)-1] ^= 1
		f.Add(x)
	}
	f.Add(loadHex(f, "appendix-a-request.hex")[2:18]) // the draft's header
	f.Fuzz(func(t *testing.T, h []byte) {
		link, a, err := k.open(h, networks(2))
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("open error %v is not ErrBadHeader", err)
			}
			return
		}
		again, err := k.seal(link, a)
		if err != nil {
			t.Fatalf("opened %v on link %d, which does not seal: %v", a, link, err)
		}
		if !bytes.Equal(again, h) {
			t.Fatalf("header %x opened to %v, whose header is %x", h, a, again)
		}
	})
}
