package upstream

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkDrain measures records/s drained from a MemorySource to a
// broker over loopback: b.N records over 1,000 devices, from Run until the
// cursor reaches the last record (connection set-up included). Run with
// -benchtime=100000x for the drain time of 100,000 records.
func BenchmarkDrain(b *testing.B) {
	b.Run("mochi", func(b *testing.B) {
		addr := freeAddr(b)
		startMochi(b, addr, &brokerHook{}, nil)
		benchDrain(b, "mqtt://"+addr)
	})
	b.Run("mosquitto", func(b *testing.B) { // its default configuration (Nagle on)
		broker := startMosquitto(b)
		benchDrain(b, "mqtt://"+broker.addr)
	})
	b.Run("mosquitto-nodelay", func(b *testing.B) {
		broker := startMosquitto(b, noDelay)
		benchDrain(b, "mqtt://"+broker.addr)
	})
}

func benchDrain(b *testing.B, url string) {
	recs := testRecords(b.N, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	rig := newMQTTRig(b, url, MQTTConfig{}, recs)
	rig.waitDrained(b, 10*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	rig.stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(elapsed.Seconds(), "drain_s")
}

// BenchmarkDrainWebhook measures records/s drained to an httptest TLS
// server that answers 204, with the default 4 requests in flight.
func BenchmarkDrainWebhook(b *testing.B) {
	h := newHookServer(b, func(uint64, int, http.ResponseWriter, *http.Request) {})
	recs := testRecords(b.N, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	rig := newWebhookRig(b, h, WebhookConfig{}, recs)
	rig.waitDrained(b)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}
