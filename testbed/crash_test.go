package testbed

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
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

// crashHarness is a MASA in this process, a gateway in a child process
// (so that it can be killed), and provisioned motes.
type crashHarness struct {
	cfgPath string
	dbPath  string
	gw      *gwproc.Child
	killed  bool
	motes   []*crashMote
}

// startCrashHarness builds the lab; edit may change gateway.yaml's text.
func startCrashHarness(t *testing.T, ctx context.Context, edit func(string) string) *crashHarness {
	t.Helper()
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
	mctx, mstop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { m.ServeTLS(mctx, ln, tlsCert); close(served) }()
	t.Cleanup(func() { mstop(); <-served; m.Close() })
	mfr := filepath.Join(dir, "masa", masa.FileCA)
	h := &crashHarness{}
	h.cfgPath, err = gateway.Init(filepath.Join(dir, "gw"), gateway.InitOptions{Manufacturers: []string{mfr}, MASACA: mfr, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b, _ := os.ReadFile(h.cfgPath)
		if err := os.WriteFile(h.cfgPath, []byte(edit(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := gateway.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h.dbPath = cfg.Path(cfg.Store)
	if h.gw, err = gwproc.Start(h.cfgPath, gwproc.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !h.killed {
			h.gw.Stop()
		}
	})

	const n = 16
	fast := coap.Transmission{AckTimeout: 300 * time.Millisecond, RandomFactor: 1, MaxRetransmit: 1}
	for i := range n {
		cert, key, err := m.IssueIDevID(fmt.Sprintf("CRASH-%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: m.CA()}, mote.Config{Listen: loopbackUDP})
		if err != nil {
			t.Fatal(err)
		}
		enr, _, err := p.Onboard(ctx, h.gw.CoAPS)
		if err != nil {
			t.Fatal(err)
		}
		oc, err := p.Provision(ctx, h.gw.CoAPS, enr)
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := loopbackUDP()
		c, err := coap.DialUDP(ctx, pc, h.gw.CoAP, coap.WithTransmission(fast))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		h.motes = append(h.motes, &crashMote{dev: store.DeviceID(pki.DeviceID(cert)), oc: oc, c: c})
	}
	return h
}

// flood has every mote check in as fast as it can for d; with kill, the
// gateway gets SIGKILL at 70% of d and the motes flood on into the dead
// gateway.
func (h *crashHarness) flood(t *testing.T, ctx context.Context, d time.Duration, kill bool) (sent int64) {
	t.Helper()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var n atomic.Int64
	for _, mt := range h.motes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n.Add(1)
				mt.checkIn(ctx)
			}
		}()
	}
	if kill {
		time.Sleep(d * 7 / 10)
		if err := h.gw.Kill(); err != nil {
			t.Fatal(err)
		}
		h.killed = true
		time.Sleep(d * 3 / 10)
	} else {
		time.Sleep(d)
	}
	stop.Store(true)
	wg.Wait()
	return n.Load()
}

func (h *crashHarness) acked() int {
	n := 0
	for _, mt := range h.motes {
		n += len(mt.acked)
	}
	return n
}

// restart starts the gateway again on the same database and ports.
func (h *crashHarness) restart(t *testing.T) {
	t.Helper()
	gw, err := gwproc.Start(h.cfgPath, gwproc.Options{CoAPS: h.gw.CoAPS, CoAP: h.gw.CoAP})
	if err != nil {
		t.Fatal(err)
	}
	h.gw, h.killed = gw, false
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
	h := startCrashHarness(t, ctx, nil)
	sent := h.flood(t, ctx, time.Second, true)
	acked := h.acked()
	if acked == 0 {
		t.Fatal("no check-in was acknowledged before the kill")
	}
	t.Logf("%d check-ins sent, %d acknowledged before kill -9", sent, acked)
	h.restart(t)
	// Every acknowledged request, replayed, is refused: its sequence
	// number was persisted with its record.
	for _, mt := range h.motes {
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
	h.gw.Stop()
	h.killed = true

	// Every acknowledged check-in has its record; the chain verifies.
	have := map[store.DeviceID]map[uint64]bool{}
	var signed []*record.Signed
	for _, r := range allRecords(t, ctx, h.dbPath) {
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
	for _, mt := range h.motes {
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
