package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// received collects what a subscriber got: every message, and the first
// arrival of each record id in order.
type received struct {
	needIDs bool // the broker relays user properties
	mu      sync.Mutex
	all     int
	first   []*record.Signed
	seen    map[string]bool
	badIDs  int
}

func (r *received) add(m upstream.Message) {
	s, err := record.Parse(m.Payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all++
	sum := sha256.Sum256(m.Payload)
	// mochi (the in-process fallback broker) does not relay user
	// properties to this subscriber; mosquitto does, and there the
	// record-id must be the payload's hash.
	if err != nil || (m.RecordID != "" || r.needIDs) && m.RecordID != hex.EncodeToString(sum[:]) {
		r.badIDs++
		return
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[m.RecordID] {
		r.seen[m.RecordID] = true
		r.first = append(r.first, s)
	}
}

func (r *received) distinct() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.first) }

// check verifies that every committed record arrived, that the first
// arrivals of each device are in sequence order, and that every copy
// carried the right record-id.
func (r *received) check(t *testing.T, committed []store.Record) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.badIDs > 0 {
		t.Errorf("%d messages with a wrong record-id or an invalid record", r.badIDs)
	}
	for _, c := range committed {
		if !r.seen[hex.EncodeToString(c.ID[:])] {
			t.Errorf("record seq %d (%s) never arrived", c.Seq, c.Type)
		}
	}
	last := map[record.DeviceID]uint64{}
	for _, s := range r.first {
		d := s.Record.Device
		if s.Record.Seq <= last[d] {
			t.Errorf("device %x: seq %d arrived after seq %d", d[:4], s.Record.Seq, last[d])
		}
		last[d] = s.Record.Seq
	}
	t.Logf("%d committed records, %d messages (%d duplicates)", len(committed), r.all, r.all-len(r.first))
}

func subscribe(t *testing.T, ctx context.Context, url string, r *received) {
	t.Helper()
	done := make(chan struct{})
	sctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		if err := upstream.Subscribe(sctx, url, "tumbler-test-subscriber", "tumbler/#", r.add); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(200 * time.Millisecond) // let the subscription land
}

// mochiBroker runs an in-process MQTT broker on a loopback port.
func mochiBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := mqtt.New(&mqtt.Options{InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return "mqtt://" + addr
}

// allRecords reads every committed record of a gateway database.
func allRecords(t *testing.T, ctx context.Context, path string) []store.Record {
	t.Helper()
	s, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []store.Record
	var after uint64
	for {
		recs, err := s.Records(ctx, store.RecordFilter{AfterSeq: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

// waitBacklog waits until the sink has delivered everything committed.
func waitBacklog(t *testing.T, ctx context.Context, path, sink string) {
	t.Helper()
	s, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for {
		n, _, err := s.OutboxBacklog(ctx, sink)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("backlog of %d records did not drain", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The gateway killed with SIGKILL while delivering, then restarted:
// every committed record is delivered at least once, none is skipped,
// each device's records arrive in order, duplicates carry the same
// record-id.
func TestKill9DuringDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var got received
	var broker string
	if m := tryMosquitto(t); m != nil {
		broker, got.needIDs = "mqtt://"+m.addr, true
	} else {
		broker = mochiBroker(t)
	}
	subscribe(t, ctx, broker, &got)

	h := startCrashHarness(t, ctx, func(cfg string) string {
		return withUpstream(cfg, broker)
	})
	h.flood(t, ctx, 600*time.Millisecond, true) // kills the gateway mid-flood, mid-delivery
	h.restart(t)
	waitBacklog(t, ctx, h.dbPath, "cloud")
	committed := allRecords(t, ctx, h.dbPath)
	deadline := time.Now().Add(30 * time.Second)
	for got.distinct() < len(committed) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got.check(t, committed)
}

// withUpstream replaces the upstream list tumbler init wrote (empty).
func withUpstream(cfg, broker string) string {
	return strings.Replace(cfg, "upstream: []\n", "upstream:\n  - name: cloud\n    mqtt: {url: \""+broker+"\"}\n", 1)
}

// mosquitto runs the Debian broker on a loopback port with persistence, so
// that a subscriber's queued messages survive a stop.
type mosquitto struct {
	bin, conf, addr string
	cmd             *exec.Cmd
}

func newMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	m := tryMosquitto(t)
	if m == nil {
		t.Skip("mosquitto not installed (apt-get install mosquitto); .ci/run installs it")
	}
	return m
}

// tryMosquitto starts mosquitto, or returns nil if it is not installed.
func tryMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	// Persistence keeps the subscriber's session (and the messages queued
	// for it) across a restart. Run as root, mosquitto would otherwise
	// drop to the "mosquitto" user, which cannot write the test's private
	// directory, and silently lose the session; "user root" is ignored
	// when not root.
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nset_tcp_nodelay true\nmax_queued_messages 0\nuser root\n", port, dir)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{bin: bin, conf: conf, addr: addr}
	m.start(t)
	t.Cleanup(func() { m.stop() })
	return m
}

func (m *mosquitto) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", m.addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("mosquitto did not start")
}

// stop ends mosquitto with SIGTERM, so it saves its persistence file.
func (m *mosquitto) stop() {
	if m.cmd == nil || m.cmd.ProcessState != nil {
		return
	}
	m.cmd.Process.Signal(os.Interrupt)
	m.cmd.Wait()
}

// mosquitto stopped for a while during a check-in flood, then started:
// the gateway's backlog drains completely and every record reaches the
// subscriber.
func TestBrokerOutageDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := newMosquitto(t)
	broker := "mqtt://" + m.addr
	var got received
	subscribe(t, ctx, broker, &got)
	h := startCrashHarness(t, ctx, func(cfg string) string {
		return withUpstream(cfg, broker)
	})
	stopped := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		m.stop()
		close(stopped)
	}()
	h.flood(t, ctx, time.Second, false)
	<-stopped
	if n := backlog(t, ctx, h.dbPath, "cloud"); n == 0 {
		t.Fatal("no backlog built up while the broker was down")
	} else {
		t.Logf("backlog while the broker is down: %d records", n)
	}
	m.start(t)
	waitBacklog(t, ctx, h.dbPath, "cloud")
	committed := allRecords(t, ctx, h.dbPath)
	deadline := time.Now().Add(30 * time.Second)
	for got.distinct() < len(committed) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got.check(t, committed)
}

func backlog(t *testing.T, ctx context.Context, path, sink string) int {
	s, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, _, err := s.OutboxBacklog(ctx, sink)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// `tumbler testbed --motes 50 --checkins 3 --upstream mqtt://...` against
// mosquitto: every record arrives on the broker and verifies.
func TestTestbedUpstreamMosquitto(t *testing.T) {
	m := newMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var got received
	subscribe(t, ctx, "mqtt://"+m.addr, &got)
	art := t.TempDir()
	rep, err := Run(ctx, Options{Motes: 50, Checkins: 3, Seed: 1, Upstream: []string{"mqtt://" + m.addr}, Artifacts: art})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.CheckinsAcked != 150 || rep.Delivered["mqtt"] != rep.Records {
		t.Fatalf("report %+v", rep)
	}
	deadline := time.Now().Add(30 * time.Second)
	for got.distinct() < rep.Records && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got.mu.Lock()
	recs := append([]*record.Signed(nil), got.first...)
	got.mu.Unlock()
	if len(recs) != rep.Records {
		t.Fatalf("%d of %d records arrived", len(recs), rep.Records)
	}
	pubPEM, err := os.ReadFile(filepath.Join(art, "gateway.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := record.LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range recs {
		if err := s.Verify(pub); err != nil {
			t.Fatalf("record seq %d: %v", s.Record.Seq, err)
		}
	}
}
