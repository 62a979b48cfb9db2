package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// BenchmarkDrainMosquitto fills the SQLite outbox with b.N records (300
// bytes, 1,000 devices) while no sink runs — a backlog after an outage —
// then drains it to a local mosquitto with the MQTT sink (QoS 1, the cursor
// moving only on PUBACK) and reports records per second and the drain
// time.
//
//	go test -run '^$' -bench DrainMosquitto -benchtime 100000x ./bench/
func BenchmarkDrainMosquitto(b *testing.B) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mosquitto"); e != nil {
			b.Skip("mosquitto not installed")
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir := b.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	// Nagle's algorithm delays PUBACKs while publishes are in flight;
	// integrators running mosquitto should turn it off as here.
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n", port)), 0o644)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			b.Fatal("mosquitto did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}

	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(dir, "gw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.StopTimer()
	payload := make([]byte, 300)
	rand.Read(payload)
	const batch = 5000
	for start := 0; start < b.N; start += batch {
		err := s.Update(ctx, func(tx *store.Tx) error {
			for i := start; i < min(start+batch, b.N); i++ {
				var dev store.DeviceID
				binary.BigEndian.PutUint32(dev[:], uint32(i%1000))
				cose := append(binary.BigEndian.AppendUint64(nil, uint64(i)), payload...)
				var prev []byte
				if i >= 1000 {
					prevCose := append(binary.BigEndian.AppendUint64(nil, uint64(i-1000)), payload...)
					h := sha256.Sum256(prevCose)
					prev = h[:]
				}
				r := store.Record{Seq: uint64(i + 1), Device: dev, Serial: "S", Type: "checkin", Time: time.Now(), ID: sha256.Sum256(cose), COSE: cose}
				if err := tx.AppendRecord(r, prev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	sc, err := upstream.ParseSinkURL("mqtt://" + addr)
	if err != nil {
		b.Fatal(err)
	}
	sink, err := upstream.NewSink(sc, "bench")
	if err != nil {
		b.Fatal(err)
	}
	d, err := upstream.NewDeliverer(gateway.OutboxSource(s), []upstream.Sink{sink})
	if err != nil {
		b.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	b.StartTimer()
	go func() { done <- d.Run(dctx) }()
	for {
		n, _, err := s.OutboxBacklog(ctx, sc.Name)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(elapsed.Seconds(), "drain-s")
}
