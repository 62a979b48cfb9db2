package testbed

import (
	"context"
	"crypto/x509"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/coap/oscore"
	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/internal/gwproc"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/masa"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// crashMote is a provisioned device flooding check-ins.
type crashMote struct {
	dev   store.DeviceID
	oc    *oscore.Context
	c     *coap.Client
	mu    sync.Mutex
	acked []ackedCheckin
}

type ackedCheckin struct {
	seq   uint64
	outer *coap.Request // as sent, to replay
}

// checkIn protects and sends one check-in; it reports whether the gateway
// acknowledged it (2.04 inside OSCORE).
func (m *crashMote) checkIn(ctx context.Context) bool {
	body, _ := cose.Marshal(map[int]any{1: 1, 2: "1.0", 3: nil, 4: 0})
	outer, ex, err := oscore.Client{Ctx: m.oc}.Protect(&coap.Request{Method: codes.POST, Path: "/ci", ContentFormat: coap.FormatCBOR, Accept: coap.FormatNone, Payload: body})
	if err != nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := m.c.Do(rctx, outer)
	if err != nil {
		return false
	}
	inner, err := oscore.Client{Ctx: m.oc}.Unprotect(resp, ex)
	if err != nil || inner.Code != codes.Changed {
		return false
	}
	m.mu.Lock()
	m.acked = append(m.acked, ackedCheckin{seq: ex.Seq(), outer: outer})
	m.mu.Unlock()
	return true
}

// A kill -9 of the gateway in the middle of a check-in flood loses no
// acknowledged check-in, and after the restart no acknowledged request's
// sequence number is accepted again (a response nonce is never reused).
func TestKill9DuringCheckinFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mpath, err := masa.Init(filepath.Join(dir, "masa"), ln.Addr().String(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mcfg, _ := masa.LoadConfig(mpath)
	m, tlsCert, err := masa.Open(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mctx, mstop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { m.ServeTLS(mctx, ln, tlsCert); close(served) }()
	defer func() { mstop(); <-served }()
	mfr := filepath.Join(dir, "masa", masa.FileCA)
	cfgPath, err := gateway.Init(filepath.Join(dir, "gw"), gateway.InitOptions{Manufacturers: []string{mfr}, MASACA: mfr, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gwproc.Start(cfgPath, gwproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			gw.Kill()
		}
	}()

	const n = 16
	motes := make([]*crashMote, n)
	fast := coap.Transmission{AckTimeout: 300 * time.Millisecond, RandomFactor: 1, MaxRetransmit: 1}
	for i := range motes {
		cert, key, err := m.IssueIDevID("CRASH-" + string(rune('A'+i)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: m.CA()}, mote.Config{Listen: loopbackUDP})
		if err != nil {
			t.Fatal(err)
		}
		enr, _, err := p.Onboard(ctx, gw.CoAPS)
		if err != nil {
			t.Fatal(err)
		}
		oc, err := p.Provision(ctx, gw.CoAPS, enr)
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := loopbackUDP()
		c, err := coap.DialUDP(ctx, pc, gw.CoAP, coap.WithTransmission(fast))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		motes[i] = &crashMote{dev: store.DeviceID(pki.DeviceID(cert)), oc: oc, c: c}
	}

	// Flood, kill -9 mid-flood, flood on into the dead gateway, stop.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var sent atomic.Int64
	for _, mt := range motes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				sent.Add(1)
				mt.checkIn(ctx)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	if err := gw.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	var acked int
	for _, mt := range motes {
		acked += len(mt.acked)
	}
	if acked == 0 {
		t.Fatal("no check-in was acknowledged before the kill")
	}
	t.Logf("%d check-ins sent, %d acknowledged before kill -9", sent.Load(), acked)

	// Restart on the same database and ports.
	gw2, err := gwproc.Start(cfgPath, gwproc.Options{CoAPS: gw.CoAPS, CoAP: gw.CoAP})
	if err != nil {
		t.Fatal(err)
	}
	// Every acknowledged request, replayed, is refused: its sequence
	// number was persisted with its record.
	for _, mt := range motes {
		for _, a := range mt.acked {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			resp, err := mt.c.Do(rctx, a.outer)
			cancel()
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if resp.Code != codes.Unauthorized || string(resp.Payload) != "Replay detected" {
				t.Fatalf("replayed seq %d answered %v %q", a.seq, resp.Code, resp.Payload)
			}
		}
		// The device carries on with fresh sequence numbers.
		if !mt.checkIn(ctx) {
			t.Fatal("check-in after restart not acknowledged")
		}
	}
	gw2.Stop()

	// Every acknowledged check-in has its record; the chain verifies.
	cfg, err := gateway.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, cfg.Path(cfg.Store))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	have := map[store.DeviceID]map[uint64]bool{}
	var signed []*record.Signed
	var after uint64
	for {
		recs, err := s.Records(ctx, store.RecordFilter{AfterSeq: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			after = r.Seq
			sr, err := record.Parse(r.COSE)
			if err != nil {
				t.Fatal(err)
			}
			signed = append(signed, sr)
			if r.Type != "checkin" {
				continue
			}
			var b record.CheckInBody
			if err := sr.Record.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if have[r.Device] == nil {
				have[r.Device] = map[uint64]bool{}
			}
			have[r.Device][*b.OSCORESeq] = true
		}
	}
	for _, mt := range motes {
		for _, a := range mt.acked {
			if !have[mt.dev][a.seq] {
				t.Errorf("acknowledged check-in seq %d of %x has no record", a.seq, mt.dev[:4])
			}
		}
	}
	if err := record.VerifyChain(signed); err != nil {
		t.Errorf("chain after crash: %v", err)
	}
}
