package upstream

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

const testGateway = "gw1"

// mqttRig runs a Deliverer with one MQTT sink named "broker".
type mqttRig struct {
	src  *MemorySource
	sink *MQTT
	d    *Deliverer
	recs []Record
	stop func()
}

func newMQTTRig(t testing.TB, url string, cfg MQTTConfig, recs []Record, opts ...SinkOption) *mqttRig {
	t.Helper()
	cfg.URL = url
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = time.Second
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	opts = append([]SinkOption{WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)
	sink, err := NewMQTT("broker", testGateway, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	src := filledSource(t, recs)
	d, err := NewDeliverer(src, []Sink{sink}, WithBackoff(10*time.Millisecond, 200*time.Millisecond), WithBatchSize(512))
	if err != nil {
		t.Fatal(err)
	}
	return &mqttRig{src: src, sink: sink, d: d, recs: recs, stop: runDeliverer(t, d)}
}

func (r *mqttRig) waitDrained(t testing.TB, timeout time.Duration) {
	t.Helper()
	last := r.recs[len(r.recs)-1].Seq
	waitFor(t, timeout, "outbox drained", func() bool { return r.src.Cursor("broker") == last })
}

// receivedAll waits until the broker has recorded every record in recs: mochi sends
// the PUBACK before it runs the OnPublished hook, so the outbox can drain
// a moment before the hook has seen the last message.
func (h *brokerHook) receivedAll(t testing.TB, recs []Record) []received {
	t.Helper()
	want := make(map[string]bool, len(recs))
	for _, r := range recs {
		want[r.IDHex()] = true
	}
	var msgs []received
	waitFor(t, 10*time.Second, "the broker to record every record", func() bool {
		msgs = h.received()
		seen := make(map[string]bool, len(recs))
		for _, m := range msgs {
			if want[m.recordID] {
				seen[m.recordID] = true
			}
		}
		return len(seen) == len(want)
	})
	return msgs
}

// checkReceived checks every message against the record it carries and
// returns the arrivals as seqs. Every record must have arrived.
func checkReceived(t testing.TB, sink *MQTT, recs []Record, msgs []received) []uint64 {
	t.Helper()
	byID := make(map[string]Record, len(recs))
	for _, r := range recs {
		byID[r.IDHex()] = r
	}
	var arrivals []uint64
	seen := make(map[uint64]bool)
	for _, m := range msgs {
		r, ok := byID[m.recordID]
		if !ok {
			t.Fatalf("message with unknown record-id %q on %s", m.recordID, m.topic)
		}
		if sum := sha256.Sum256(m.payload); hex.EncodeToString(sum[:]) != m.recordID {
			t.Fatalf("seq %d: record-id is not the SHA-256 of the payload", r.Seq)
		}
		if string(m.payload) != string(r.COSE) {
			t.Fatalf("seq %d: payload is not the COSE bytes", r.Seq)
		}
		if want := "tumbler/" + testGateway + "/" + r.Type + "/" + hex.EncodeToString(r.Device[:]); m.topic != want || sink.Topic(r) != want {
			t.Fatalf("seq %d: topic %q, want %q", r.Seq, m.topic, want)
		}
		if m.contentType != `application/cose; cose-type="cose-sign1"` {
			t.Fatalf("seq %d: content type %q", r.Seq, m.contentType)
		}
		arrivals = append(arrivals, r.Seq)
		seen[r.Seq] = true
	}
	for _, r := range recs {
		if !seen[r.Seq] {
			t.Fatalf("seq %d never arrived (%d messages for %d records)", r.Seq, len(msgs), len(recs))
		}
	}
	return arrivals
}

func TestMQTTDeliversToMochi(t *testing.T) {
	addr := freeAddr(t)
	hook := &brokerHook{keep: true}
	startMochi(t, addr, hook, nil)
	recs := testRecords(3000, 40)
	rig := newMQTTRig(t, "mqtt://"+addr, MQTTConfig{}, recs)
	rig.waitDrained(t, 30*time.Second)
	rig.stop()
	checkDeviceOrder(t, bySeq(recs), checkReceived(t, rig.sink, recs, hook.receivedAll(t, recs)))
	if p := rig.src.Parked("broker"); len(p) != 0 {
		t.Errorf("parked %d records", len(p))
	}
}

func TestMQTTBrokerRestart(t *testing.T) {
	tests := []struct {
		name           string
		restart        func(*mochiBroker)
		sessionPresent bool // on the reconnect
	}{
		{name: "listener restarted, session kept", restart: (*mochiBroker).restartListener, sessionPresent: true},
		{name: "broker replaced, session lost", restart: (*mochiBroker).replace, sessionPresent: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			trigger := make(chan struct{})
			var once sync.Once
			hook := &brokerHook{keep: true, onPublish: func(n int, _ packets.Packet) error {
				if n == 700 {
					once.Do(func() { close(trigger) })
				}
				return nil
			}}
			broker := startMochi(t, addr, hook, nil)
			recs := testRecords(4000, 25)
			var logs syncBuffer
			rig := newMQTTRig(t, "mqtt://"+addr, MQTTConfig{}, recs, WithSinkLogger(zerolog.New(&logs)))
			select {
			case <-trigger:
			case <-time.After(20 * time.Second):
				t.Fatal("no publishes reached the broker")
			}
			tt.restart(broker)
			rig.waitDrained(t, 60*time.Second)
			rig.stop()
			msgs := hook.receivedAll(t, recs)
			arrivals := checkReceived(t, rig.sink, recs, msgs) // duplicates carry the same record-id, checked there
			checkDeviceOrder(t, bySeq(recs), arrivals)
			t.Logf("%d messages for %d records (%d duplicates)", len(msgs), len(recs), len(msgs)-len(recs))
			// The first connection to a fresh broker has no session either.
			want, atLeast := fmt.Sprintf(`"session_present":%v`, tt.sessionPresent), 1
			if !tt.sessionPresent {
				atLeast = 2
			}
			if n := countLogLines(t, logs.String(), "info", want); n < atLeast {
				t.Errorf("no reconnect with %s:\n%s", want, logs.String())
			}
		})
	}
}

func TestMQTTBadCredentials(t *testing.T) {
	t.Run("retried with backoff, nothing acked, then delivered", func(t *testing.T) {
		addr := freeAddr(t)
		var (
			rig           *mqttRig
			mu            sync.Mutex
			cursorAtRefus []uint64
		)
		hook := &brokerHook{keep: true, authOK: func(n int, user, pass string) bool {
			if n <= 4 {
				mu.Lock()
				if rig != nil {
					cursorAtRefus = append(cursorAtRefus, rig.src.Cursor("broker"))
				}
				mu.Unlock()
				return false // the broker's credentials are fixed after the fourth try
			}
			return user == "gw1" && pass == "s3cret"
		}}
		startMochi(t, addr, hook, nil)
		var logs syncBuffer
		recs := testRecords(50, 5)
		mu.Lock()
		rig = newMQTTRig(t, "mqtt://"+addr, MQTTConfig{Username: "gw1", Password: "s3cret"}, recs,
			WithSinkLogger(zerolog.New(&logs)), WithSinkRand(constReader(0xff)))
		mu.Unlock()
		rig.waitDrained(t, 30*time.Second)
		rig.stop()
		if hook.authAttempts() < 5 {
			t.Errorf("%d CONNECT attempts, want at least 5", hook.authAttempts())
		}
		mu.Lock()
		for i, c := range cursorAtRefus {
			if c != 0 {
				t.Errorf("refusal %d: cursor at %d, want 0 (nothing acked while refused)", i, c)
			}
		}
		mu.Unlock()
		checkReceived(t, rig.sink, recs, hook.receivedAll(t, recs))
		if n := countLogLines(t, logs.String(), "warn", "0x86"); n < 4 {
			t.Errorf("%d warn lines with reason 0x86, want one per refusal:\n%s", n, logs.String())
		}
	})
	t.Run("Deliver reports the refusal", func(t *testing.T) {
		addr := freeAddr(t)
		startMochi(t, addr, &brokerHook{authOK: func(int, string, string) bool { return false }}, nil)
		sink, err := NewMQTT("broker", testGateway, MQTTConfig{URL: "mqtt://" + addr, Username: "gw1", Password: "wrong", ConnectTimeout: time.Second},
			WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := make(chan error, 1)
		go func() { done <- sink.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		res, err := sink.Deliver(ctx, testRecords(3, 3))
		if !errors.Is(err, ErrNotConnected) {
			t.Fatalf("Deliver err = %v, want ErrNotConnected", err)
		}
		var ce *autopaho.ConnackError
		if !errors.As(err, &ce) || ce.ReasonCode != 0x86 {
			t.Errorf("err = %v, want a CONNACK refusal 0x86 inside", err)
		}
		for i, o := range res.Outcomes {
			if o.State != Retry {
				t.Errorf("record %d: %v, want retry", i, o.State)
			}
		}
	})
}

// countLogLines counts JSON log lines at level that mention needle.
func countLogLines(t testing.TB, logs, level, needle string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			continue
		}
		if e["level"] == level && strings.Contains(line, needle) {
			n++
		}
	}
	return n
}

func TestMQTTPubackReasonCodes(t *testing.T) {
	addr := freeAddr(t)
	// Fates by record type; "flaky-*" fail their first attempt only.
	fates := map[string]packets.Code{
		"forbidden":     packets.ErrNotAuthorized,
		"badtopic":      packets.ErrTopicNameInvalid,
		"badpayload":    packets.ErrPayloadFormatInvalid,
		"flaky-quota":   packets.ErrQuotaExceeded,
		"flaky-impl":    packets.ErrImplementationSpecificError,
		"flaky-unknown": {Code: 0x80, Reason: "unspecified"},
	}
	var mu sync.Mutex
	tried := make(map[string]bool)
	hook := &brokerHook{keep: true, onPublish: func(_ int, pk packets.Packet) error {
		typ := strings.Split(pk.TopicName, "/")[2]
		code, ok := fates[typ]
		if !ok {
			return nil
		}
		if strings.HasPrefix(typ, "flaky-") {
			mu.Lock()
			defer mu.Unlock()
			if tried[typ] {
				return nil
			}
			tried[typ] = true
		}
		return code
	}}
	startMochi(t, addr, hook, nil)
	types := []string{"checkin", "forbidden", "checkin", "flaky-quota", "badtopic", "checkin", "flaky-impl",
		"badpayload", "flaky-unknown", "bad/type", "checkin"}
	recs := testRecords(len(types), 2)
	for i := range recs {
		recs[i].Type = types[i]
	}
	rig := newMQTTRig(t, "mqtt://"+addr, MQTTConfig{}, recs)
	rig.waitDrained(t, 30*time.Second)
	rig.stop()

	wantParked := map[string]string{
		"forbidden":  "puback 0x87 not authorized",
		"badtopic":   "puback 0x90 topic name invalid",
		"badpayload": "puback 0x99 payload format invalid",
		"bad/type":   `record type "bad/type" may not contain '/', '+', '#' or NUL, so it cannot be a topic level`,
	}
	parked := rig.src.Parked("broker")
	if len(parked) != len(wantParked) {
		t.Errorf("parked %d records, want %d: %+v", len(parked), len(wantParked), parked)
	}
	for _, p := range parked {
		want, ok := wantParked[p.Type]
		if !ok || !strings.HasPrefix(p.Reason, want) {
			t.Errorf("parked %s with %q, want %q", p.Type, p.Reason, want)
		}
	}
	var deliverable []Record
	for _, r := range recs {
		if _, parked := wantParked[r.Type]; !parked {
			deliverable = append(deliverable, r)
		}
	}
	delivered := make(map[string]int)
	for _, m := range hook.receivedAll(t, deliverable) {
		delivered[strings.Split(m.topic, "/")[2]]++
	}
	for _, typ := range []string{"checkin", "flaky-quota", "flaky-impl", "flaky-unknown"} {
		if delivered[typ] == 0 {
			t.Errorf("no %s record delivered", typ)
		}
	}
}

func TestPubackOutcome(t *testing.T) {
	tests := []struct {
		code byte
		want State
	}{
		{0x00, Delivered}, {0x10, Delivered},
		{0x80, Retry}, {0x83, Retry}, {0x91, Retry}, {0x97, Retry}, {0xa0, Retry},
		{0x87, Parked}, {0x90, Parked}, {0x99, Parked},
	}
	for _, tt := range tests {
		o := PubackOutcome(tt.code, "server says why")
		if o.State != tt.want {
			t.Errorf("0x%02x: %v, want %v", tt.code, o.State, tt.want)
		}
		if tt.want != Delivered && !strings.HasSuffix(o.Reason, ": server says why") {
			t.Errorf("0x%02x: reason %q lacks the server's reason string", tt.code, o.Reason)
		}
	}
}

func TestMQTTOverTLS(t *testing.T) {
	serverTLS, caFile, certFile, keyFile := testPKI(t)
	addr := freeAddr(t)
	hook := &brokerHook{keep: true}
	startMochi(t, addr, hook, serverTLS)
	recs := testRecords(100, 10)
	tlsCfg := TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "broker.test"}
	rig := newMQTTRig(t, "mqtts://"+addr, MQTTConfig{TLS: tlsCfg}, recs)
	rig.waitDrained(t, 30*time.Second)
	rig.stop()
	checkReceived(t, rig.sink, recs, hook.receivedAll(t, recs))
}

// The trust anchors may be given inline (what a delegation's sink does).
func TestMQTTOverTLSInlineCA(t *testing.T) {
	serverTLS, caFile, _, _ := testPKI(t)
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS.ClientAuth = tls.NoClientCert // a delegate's broker takes a password, not the gateway's certificate
	addr := freeAddr(t)
	hook := &brokerHook{keep: true}
	startMochi(t, addr, hook, serverTLS)
	recs := testRecords(20, 4)
	rig := newMQTTRig(t, "mqtts://"+addr, MQTTConfig{TLS: TLSConfig{CA: string(ca), ServerName: "broker.test"}}, recs)
	rig.waitDrained(t, 30*time.Second)
	rig.stop()
	checkReceived(t, rig.sink, recs, hook.receivedAll(t, recs))
}

func TestMQTTRunTwice(t *testing.T) {
	sink, err := NewMQTT("broker", testGateway, MQTTConfig{URL: "mqtt://" + freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sink.Run(ctx) }()
	<-sink.started
	if err := sink.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
