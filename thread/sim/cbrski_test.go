package sim_test

import (
	"context"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/testbed"
	"github.com/tumbler-iot/tumbler/testbed/mote"
	"github.com/tumbler-iot/tumbler/testbed/radio"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
	"github.com/tumbler-iot/tumbler/thread/sim"
)

// TestCBRSKIOverThread onboards unchanged testbed pledges with the real
// gateway (testbed.StartLab: registrar, EST, lab MASA) whose DTLS server
// serves the Thread relay: pledge ⇄ radio ⇄ Joiner Router ⇄ RLY_RX/RLY_TX
// ⇄ relay.Conn ⇄ gateway.ServeDTLS. Two pledges onboard at once.
func TestCBRSKIOverThread(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab MASA and gateway")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lab, err := testbed.StartLab(ctx, t.TempDir(), testbed.LabOptions{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	}()

	th := startThread(t, ctx, threadOptions{})
	th.waitActive(t, meshcop.AllowAll())
	th.goRun(func() error { return lab.Gateway.ServeDTLS(th.ctx, th.relay) })

	euis := []string{"18b4300000000001", "18b4300000000002"}
	type result struct {
		serial string
		enr    *mote.Enrollment
		err    error
	}
	results := make(chan result, len(euis))
	for _, s := range euis {
		eui, _ := meshcop.ParseEUI64(s)
		addr := sim.JoinerAddr(meshcop.JoinerIDFromEUI64(eui))
		serial := "THREAD-" + s
		cert, key, err := lab.MASA.IssueIDevID(serial)
		if err != nil {
			t.Fatal(err)
		}
		p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: lab.MASA.CA()},
			mote.Config{Log: testLog(t), Listen: func() (net.PacketConn, error) { return th.net.Listen(addr) }})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			enr, _, err := p.Onboard(ctx, radio.Addr(th.ba.JoinerRouterAddr()))
			results <- result{serial, enr, err}
		}()
	}
	for range euis {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.serial, r.err)
		}
		if r.enr.LDevID.Subject.SerialNumber != r.serial {
			t.Fatalf("%s: LDevID for %q", r.serial, r.enr.LDevID.Subject.SerialNumber)
		}
	}
	if rs := th.relay.Stats(); rs.Joiners != len(euis) || rs.Malformed != 0 || rs.DroppedQueueFull != 0 {
		t.Fatalf("relay %+v", rs)
	}
	th.stop(t)
}
