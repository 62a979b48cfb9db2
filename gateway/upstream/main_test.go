package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// baseTime is when the test records were "signed".
var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testRecords returns n records over the given number of devices, round
// robin, with distinct COSE-looking payloads (a tag 18 array, then the
// index), Seq 1..n and ID the SHA-256 of the payload.
func testRecords(n, devices int) []Record {
	types := []string{"checkin", "enroll", "transfer"}
	recs := make([]Record, n)
	for i := range recs {
		dev := i % devices
		payload := make([]byte, 0, 200)
		payload = append(payload, 0xd2, 0x84) // COSE_Sign1 tag, array(4)
		payload = binary.BigEndian.AppendUint64(payload, uint64(i))
		payload = append(payload, bytes.Repeat([]byte{byte(i)}, 190)...)
		recs[i] = Record{
			Seq:    uint64(i + 1),
			ID:     sha256.Sum256(payload),
			Type:   types[i%len(types)],
			Device: sha256.Sum256([]byte(fmt.Sprintf("device-%d", dev))),
			Serial: fmt.Sprintf("SN-%04d", dev),
			Time:   baseTime.Add(time.Duration(i) * time.Millisecond),
			COSE:   payload,
		}
	}
	return recs
}

// filledSource returns a MemorySource holding recs.
func filledSource(t testing.TB, recs []Record) *MemorySource {
	t.Helper()
	src := NewMemorySource()
	if err := src.Append(recs...); err != nil {
		t.Fatal(err)
	}
	return src
}

// bySeq indexes records by Seq.
func bySeq(recs []Record) map[uint64]Record {
	m := make(map[uint64]Record, len(recs))
	for _, r := range recs {
		m[r.Seq] = r
	}
	return m
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runDeliverer runs d in the background; the returned stop cancels it and
// checks that Run returned nil.
func runDeliverer(t testing.TB, d *Deliverer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fakeClock is a Clock for deterministic tests: Now is fixed, and After
// records each requested wait and fires after at most a millisecond of
// real time, so backoff sequences can be checked without waiting them out.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return time.After(min(d, time.Millisecond))
}

// waitsExcept returns the recorded waits other than the given ones (poll
// and metrics intervals).
func (c *fakeClock) waitsExcept(skip ...time.Duration) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
next:
	for _, w := range c.waits {
		for _, s := range skip {
			if w == s {
				continue next
			}
		}
		out = append(out, w)
	}
	return out
}

// constReader reads an endless run of one byte: 0xff makes every backoff
// delay its ceiling, 0x00 makes it zero.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkDeviceOrder checks that, per device, the first arrival of each
// record is in Seq order. arrivals are seqs in arrival order.
func checkDeviceOrder(t testing.TB, bySeq map[uint64]Record, arrivals []uint64) {
	t.Helper()
	seen := make(map[uint64]bool, len(arrivals))
	last := make(map[[32]byte]uint64)
	for _, seq := range arrivals {
		if seen[seq] {
			continue // a duplicate of an earlier delivery
		}
		seen[seq] = true
		r, ok := bySeq[seq]
		if !ok {
			t.Fatalf("received unknown seq %d", seq)
		}
		if prev := last[r.Device]; seq < prev {
			t.Fatalf("device %x: seq %d arrived after seq %d", r.Device[:4], seq, prev)
		}
		last[r.Device] = seq
	}
}
