package ble_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/btp"
	"github.com/tumbler-iot/tumbler/ble/sim"
)

// echo answers every datagram the Central reads with itself, until the
// Central is closed.
func echo(t testing.TB, c *ble.Central) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, addr, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := c.WriteTo(buf[:n], addr); err != nil {
				t.Errorf("echo to %v: %v", addr, err)
			}
		}
	})
	t.Cleanup(func() {
		_ = c.Close()
		wg.Wait()
	})
}

func roundTrip(t testing.TB, pc *ble.PeripheralConn, msg []byte) error {
	t.Helper()
	if _, err := pc.WriteTo(msg, pc.RemoteAddr()); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	if err := pc.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		return err
	}
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		return err
	}
	if from.String() != pc.RemoteAddr().String() {
		return fmt.Errorf("reply from %v", from)
	}
	if !bytes.Equal(buf[:n], msg) {
		return fmt.Errorf("echo of %d octets came back as %d", len(msg), n)
	}
	return nil
}

// The gateway reads each pledge's datagrams with that link's address and
// answers on it; 1024-octet datagrams cross at ATT_MTU 23 and 247.
func TestCentralDatagrams(t *testing.T) {
	for _, mtu := range []int{23, 247} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			n := newSim(t, sim.WithATTMTU(mtu, mtu))
			c := serveCentral(t, n)
			pc := pledge(t, n, "pledge-1")
			if got := pc.Params().SegmentSize; got != mtu-3 {
				t.Fatalf("segment size %d at ATT_MTU %d", got, mtu)
			}
			if pc.RemoteAddr().String() != n.CentralAddr().String() || pc.LocalAddr().String() != "pledge-1" {
				t.Fatalf("pledge addresses %v -> %v", pc.LocalAddr(), pc.RemoteAddr())
			}
			msg := bytes.Repeat([]byte{0xa5, 0x5a, 0x01, 0x02}, 256)
			if _, err := pc.WriteTo(msg, n.CentralAddr()); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			_ = c.SetReadDeadline(time.Now().Add(testTimeout))
			k, from, err := c.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:k], msg) {
				t.Fatalf("gateway read %d octets from %v: %v", k, from, err)
			}
			if a, ok := from.(ble.Addr); !ok || a.Device != "pledge-1" || a.Link != 1 || from.Network() != "ble" {
				t.Fatalf("from %#v", from)
			}
			reply := bytes.Repeat([]byte{7}, 1024)
			if _, err := c.WriteTo(reply, from); err != nil {
				t.Fatal(err)
			}
			_ = pc.SetReadDeadline(time.Now().Add(testTimeout))
			k, from, err = pc.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:k], reply) || from.String() != "gateway" {
				t.Fatalf("pledge read %d octets from %v: %v", k, from, err)
			}
			if st := c.Stats(); st.LinksAccepted != 1 || st.Sessions != 1 || st.DatagramsIn != 1 || st.DatagramsOut != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// Many pledges at once, each over its own link with its own MTU, latency
// and jitter: every echo comes back to the pledge that sent it.
func TestCentralManyPledges(t *testing.T) {
	n := newSim(t, sim.WithSeed(7), sim.WithATTMTU(23, 247), sim.WithLatency(100*time.Microsecond, 200*time.Microsecond))
	c := serveCentral(t, n)
	echo(t, c)
	const pledges = 16
	var wg sync.WaitGroup
	for i := range pledges {
		wg.Go(func() {
			pc := pledge(t, n, fmt.Sprintf("pledge-%d", i))
			for j := range 3 {
				msg := bytes.Repeat([]byte{byte(i), byte(j)}, 50+i*30)
				if err := roundTrip(t, pc, msg); err != nil {
					t.Errorf("pledge %d message %d: %v", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.LinksAccepted != pledges || st.DatagramsIn != 3*pledges {
		t.Fatalf("stats %+v", st)
	}
}

// Each new link is a new peer, even from the same pledge, so each DTLS
// association runs on its own; the session of a closed link ends and is
// counted by reason.
func TestCentralOneAssociationPerLink(t *testing.T) {
	n := newSim(t)
	c := serveCentral(t, n)
	buf := make([]byte, 64)
	for i := range 2 {
		pc, err := n.Pledge(testContext(t), "pledge-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.WriteTo([]byte("hello"), pc.RemoteAddr()); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(testTimeout))
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := (ble.Addr{Device: "pledge-1", Link: uint64(i + 1)}); from != want || from.String() != fmt.Sprintf("pledge-1#%d", i+1) {
			t.Fatalf("link %d from %v, want %v", i, from, want)
		}
		_ = pc.Close()
		eventually(t, "session to end", func() bool { return c.Stats().Sessions == 0 })
	}
	st := c.Stats()
	if st.LinksAccepted != 2 || st.Ended["link_closed"] != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A datagram for the old link's address goes nowhere, silently.
	if k, err := c.WriteTo([]byte("late"), ble.Addr{Device: "pledge-1", Link: 1}); err != nil || k != 4 {
		t.Fatalf("write to a closed link: %d, %v", k, err)
	}
	if c.Stats().DroppedNoRoute != 1 {
		t.Fatalf("no-route drops %d", c.Stats().DroppedNoRoute)
	}
}

func TestCentralLinkLimit(t *testing.T) {
	n := newSim(t)
	c := serveCentral(t, n, ble.WithMaxLinks(2))
	pledge(t, n, "p1")
	pledge(t, n, "p2")
	_, err := n.Pledge(testContext(t), "p3")
	wantErr(t, err, btp.ErrLinkClosed)
	eventually(t, "refusal counted", func() bool { return c.Stats().LinksRefused == 1 })
	// A link counts against the limit from its BTP handshake on; the
	// central counts it accepted once the handshake is done on its side,
	// which may be just after the pledge's.
	eventually(t, "two sessions", func() bool { st := c.Stats(); return st.Sessions == 2 && st.LinksAccepted == 2 })
	if st := c.Stats(); st.LinksRefused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Datagrams the registrar does not read in time are dropped and counted;
// memory stays bounded by the queue.
func TestCentralInboundQueueBound(t *testing.T) {
	n := newSim(t)
	c := serveCentral(t, n, ble.WithQueueLen(2))
	pc := pledge(t, n, "pledge-1")
	for i := range 6 {
		if _, err := pc.WriteTo([]byte{byte(i)}, pc.RemoteAddr()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "six datagrams accounted", func() bool {
		st := c.Stats()
		return st.DatagramsIn+st.DroppedInbound == 6
	})
	if st := c.Stats(); st.DatagramsIn != 2 || st.DroppedInbound != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCentralDeadlinesAndClose(t *testing.T) {
	n := newSim(t)
	c := serveCentral(t, n)
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	_, _, err := c.ReadFrom(make([]byte, 10))
	wantErr(t, err, os.ErrDeadlineExceeded)
	_ = c.SetDeadline(time.Time{})

	pc := pledge(t, n, "pledge-1")
	read := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 10))
		read <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, <-read, net.ErrClosed)
	wantErr(t, c.Close(), net.ErrClosed)
	_, err = c.WriteTo([]byte{1}, pc.RemoteAddr())
	wantErr(t, err, net.ErrClosed)
	// The pledge sees its link go.
	<-pc.Done()
	_, _, err = pc.ReadFrom(make([]byte, 10))
	wantErr(t, err, net.ErrClosed)
	wantErr(t, err, btp.ErrLinkClosed)
}

func TestPeripheralConnRefusesOtherPeers(t *testing.T) {
	n := newSim(t)
	serveCentral(t, n)
	pc := pledge(t, n, "pledge-1")
	_, err := pc.WriteTo([]byte{1}, ble.Addr{Device: "someone-else"})
	wantErr(t, err, ble.ErrNoRoute)
	_, err = pc.WriteTo(make([]byte, btp.DefaultMaxMessage+1), pc.RemoteAddr())
	wantErr(t, err, btp.ErrMessageTooLarge)
	_ = pc.SetReadDeadline(time.Now().Add(-time.Second))
	_, _, err = pc.ReadFrom(make([]byte, 10))
	wantErr(t, err, os.ErrDeadlineExceeded)
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, pc.Close(), net.ErrClosed)
	_, err = pc.WriteTo([]byte{1}, pc.RemoteAddr())
	wantErr(t, err, net.ErrClosed)
}

// Lossy links: connections drop at random (seeded). A pledge reconnects
// on a new link, as testbed/mote re-Listens, until every datagram has
// made the round trip; the gateway counts the lost sessions.
func TestCentralLossyLinks(t *testing.T) {
	for _, tc := range []struct {
		drop float64
		mtu  int
	}{{0, 23}, {0, 247}, {0.02, 23}, {0.02, 247}, {0.1, 247}} {
		t.Run(fmt.Sprintf("drop%v/mtu%d", tc.drop, tc.mtu), func(t *testing.T) {
			n := newSim(t, sim.WithSeed(42), sim.WithDropRate(tc.drop), sim.WithATTMTU(tc.mtu, tc.mtu))
			c := serveCentral(t, n)
			echo(t, c)
			msgs := 0
			reconnects := 0
			var pc *ble.PeripheralConn
			for msgs < 8 {
				if pc == nil {
					var err error
					if pc, err = n.Pledge(testContext(t), "pledge-1"); err != nil {
						if !errors.Is(err, btp.ErrLinkClosed) {
							t.Fatal(err)
						}
						reconnects++
						continue
					}
				}
				if err := roundTrip(t, pc, bytes.Repeat([]byte{byte(msgs)}, 300)); err != nil {
					if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("message %d: %v", msgs, err)
					}
					_ = pc.Close()
					pc, reconnects = nil, reconnects+1
					continue
				}
				msgs++
			}
			_ = pc.Close()
			if tc.drop == 0 && reconnects != 0 {
				t.Fatalf("%d reconnects without loss", reconnects)
			}
			t.Logf("drop %v, mtu %d: %d reconnects, sim %+v", tc.drop, tc.mtu, reconnects, n.Stats())
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]ble.Option{
		"nil":          nil,
		"nil BTP":      ble.WithBTP(nil),
		"links 0":      ble.WithMaxLinks(0),
		"queue 0":      ble.WithQueueLen(0),
		"empty name":   ble.WithName(""),
		"long name":    ble.WithName(string(make([]byte, 65))),
		"links 65536":  ble.WithMaxLinks(65536),
		"queue 100000": ble.WithQueueLen(100000),
	} {
		if _, err := ble.NewCentral(o); !errors.Is(err, ble.ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReason(t *testing.T) {
	for want, err := range map[string]error{
		"ack_timeout":  fmt.Errorf("x: %w", btp.ErrAckTimeout),
		"sequence":     btp.ErrSequence,
		"window":       btp.ErrWindow,
		"link_closed":  fmt.Errorf("%w: %w", btp.ErrLinkClosed, sim.ErrDropped),
		"closed":       btp.ErrClosed,
		"idle_timeout": btp.ErrIdleTimeout,
		"other":        errors.New("?"),
	} {
		if got := ble.Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}
