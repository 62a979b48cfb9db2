package record

import (
	"crypto/rand"
	"testing"
)

// benchRecord is a check-in record like the gateway emits most.
func benchRecord(b *testing.B) *Record {
	b.Helper()
	prev := IDOf([]byte("prev"))
	r := &Record{Device: deviceA, Serial: serialA, Time: t0, Seq: 1000, Prev: &prev}
	if err := r.SetBody(&CheckInBody{
		Uptime: 604800, Firmware: "1.4.2", Battery: ptr(uint8(80)), Reboots: 3,
		OSCORESeq: ptr(uint64(4711)), NextDue: t0.AddDate(0, 0, 7),
	}); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkSign measures encoding and ES256-signing one check-in record.
func BenchmarkSign(b *testing.B) {
	key := gatewayKey(b)
	r := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(rand.Reader, key, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse measures strict parsing alone (no signature check).
func BenchmarkParse(b *testing.B) {
	data := mustSign(b, gatewayKey(b), benchRecord(b))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseVerify measures what a receiver does per record: parse
// strictly and verify kid and signature.
func BenchmarkParseVerify(b *testing.B) {
	key := gatewayKey(b)
	data := mustSign(b, key, benchRecord(b))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(&key.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyChain measures the chain rules over a 1000-record,
// 100-device chain of parsed records (no signatures); ns/record is the
// figure to read.
func BenchmarkVerifyChain(b *testing.B) {
	const n, devices = 1000, 100
	links := make([]link, n)
	for i := range links {
		d := DeviceIDOf([]byte{byte(i % devices)})
		links[i] = link{dev: d, serial: "SN", seq: uint64(i + 1)}
	}
	recs := buildChain(b, links, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyChain(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkParseCheckInRequest measures mapping a device payload.
func BenchmarkParseCheckInRequest(b *testing.B) {
	data := readHex(b, "checkin/extra.hex")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCheckInRequest(data); err != nil {
			b.Fatal(err)
		}
	}
}
