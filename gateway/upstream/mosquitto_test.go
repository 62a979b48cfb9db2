package upstream

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// noDelay turns off Nagle's algorithm in mosquitto (its default is on),
// which otherwise holds back PUBACKs while earlier ones are unacknowledged
// and halves pipelined throughput on loopback (see BenchmarkDrain).
const noDelay = "set_tcp_nodelay true"

// mosquitto is a mosquitto process of the test's own, on a free loopback
// port, without persistence.
type mosquitto struct {
	t    testing.TB
	bin  string
	addr string
	conf string
	cmd  *exec.Cmd
}

// startMosquitto starts mosquitto with extra configuration lines, or skips
// the test if the binary is not installed.
func startMosquitto(t testing.TB, extra ...string) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Skip("mosquitto is not installed (apt-get install -y mosquitto); skipping the real-broker test")
	}
	addr := freeAddr(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	lines := append([]string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"persistence false",
		"max_queued_messages 0", // no per-subscriber cap: the test subscriber must not lose messages
		"log_dest stderr",
		"log_type error",
	}, extra...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, bin: bin, addr: addr, conf: conf}
	m.start()
	t.Cleanup(m.kill)
	return m
}

// start runs mosquitto and waits until it accepts connections.
func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	waitFor(m.t, 10*time.Second, "mosquitto listening on "+m.addr, func() bool { return dialable(m.addr) })
}

// kill stops mosquitto with SIGKILL: no clean shutdown, no session saved.
func (m *mosquitto) kill() {
	if m.cmd == nil || m.cmd.Process == nil || m.cmd.ProcessState != nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

// subscriber collects the seqs of the records arriving on tumbler/#, and
// resubscribes after a broker restart.
type subscriber struct {
	cm *autopaho.ConnectionManager

	mu       sync.Mutex
	arrivals []uint64
	seqByID  map[string]uint64
	unknown  int
	notify   func(n int)
}

func newSubscriber(t testing.TB, addr string, recs []Record) *subscriber {
	t.Helper()
	s := &subscriber{seqByID: make(map[string]uint64, len(recs))}
	for _, r := range recs {
		s.seqByID[r.IDHex()] = r.Seq
	}
	u, err := url.Parse("mqtt://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan struct{}, 1)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewConstantBackoff(20 * time.Millisecond),
		ConnectTimeout:                5 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "tumbler/#", QoS: 1}}}); err == nil {
					select {
					case up <- struct{}{}:
					default:
					}
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "test-subscriber",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
				s.receive(p.Packet)
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.cm = cm
	t.Cleanup(func() {
		cancel()
		<-cm.Done()
	})
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber did not subscribe")
	}
	return s
}

func (s *subscriber) receive(p *paho.Publish) {
	id := ""
	if p.Properties != nil {
		id = p.Properties.User.Get(UserPropertyRecordID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := s.seqByID[id]
	if !ok {
		s.unknown++
		return
	}
	s.arrivals = append(s.arrivals, seq)
	if s.notify != nil {
		s.notify(len(s.arrivals))
	}
}

func (s *subscriber) got() ([]uint64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.arrivals...), s.unknown
}

func distinct(seqs []uint64) int {
	m := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		m[s] = true
	}
	return len(m)
}

func TestMosquittoDrainsInOrder(t *testing.T) {
	broker := startMosquitto(t, noDelay)
	recs := testRecords(10000, 100)
	sub := newSubscriber(t, broker.addr, recs)
	rig := newMQTTRig(t, "mqtt://"+broker.addr, MQTTConfig{}, recs)
	rig.waitDrained(t, 60*time.Second)
	waitFor(t, 30*time.Second, "subscriber has all records", func() bool {
		a, _ := sub.got()
		return distinct(a) == len(recs)
	})
	rig.stop()
	arrivals, unknown := sub.got()
	if unknown != 0 {
		t.Errorf("%d messages without a known record-id", unknown)
	}
	checkDeviceOrder(t, bySeq(recs), arrivals)
	if p := rig.src.Parked("broker"); len(p) != 0 {
		t.Errorf("parked %d records: first %+v", len(p), p[0])
	}
}

func TestMosquittoKilledMidDrain(t *testing.T) {
	broker := startMosquitto(t, noDelay)
	recs := testRecords(30000, 200)
	sub := newSubscriber(t, broker.addr, recs)
	killAt := make(chan struct{})
	var once sync.Once
	sub.mu.Lock()
	sub.notify = func(n int) {
		if n >= 5000 {
			once.Do(func() { close(killAt) })
		}
	}
	sub.mu.Unlock()
	rig := newMQTTRig(t, "mqtt://"+broker.addr, MQTTConfig{}, recs)
	select {
	case <-killAt:
	case <-time.After(30 * time.Second):
		t.Fatal("no records reached the subscriber")
	}
	broker.kill()
	cursorAtKill := rig.src.Cursor("broker")
	time.Sleep(300 * time.Millisecond)
	broker.start()
	rig.waitDrained(t, 60*time.Second)
	rig.stop()
	if cursorAtKill >= uint64(len(recs)) {
		t.Fatalf("the outbox had drained (cursor %d) before the kill; the test needs a bigger backlog", cursorAtKill)
	}
	n, _, err := rig.src.Backlog(context.Background(), "broker")
	if err != nil || n != 0 {
		t.Errorf("backlog after restart = %d, %v; want 0", n, err)
	}
	if p := rig.src.Parked("broker"); len(p) != 0 {
		t.Errorf("parked %d records", len(p))
	}
	// Messages mosquitto acknowledged but had not forwarded when killed are
	// gone (QoS 1 is a link guarantee, not a queue); what arrived must
	// still be in per-device order.
	arrivals, _ := sub.got()
	checkDeviceOrder(t, bySeq(recs), arrivals)
	t.Logf("cursor at kill %d of %d; subscriber saw %d distinct records", cursorAtKill, len(recs), distinct(arrivals))
}

func TestMosquittoMaximumPacketSizeParks(t *testing.T) {
	broker := startMosquitto(t, "max_packet_size 600")
	recs := testRecords(6, 2)
	recs[2].COSE = append(recs[2].COSE, make([]byte, 1000)...) // now larger than the broker accepts
	rig := newMQTTRig(t, "mqtt://"+broker.addr, MQTTConfig{}, recs)
	rig.waitDrained(t, 30*time.Second)
	rig.stop()
	parked := rig.src.Parked("broker")
	if len(parked) != 1 || parked[0].Seq != 3 || !strings.Contains(parked[0].Reason, "Maximum Packet Size 600") {
		t.Errorf("parked = %v, want seq 3 for its size", fmt.Sprint(parked))
	}
}
