package bench

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/internal/gwproc"
	"github.com/tumbler-iot/tumbler/testbed/masa"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// lab is a MASA in this process and a gateway in a child process.
type lab struct {
	masa  *masa.MASA
	gw    *gwproc.Child
	close func()
}

func (l *lab) identity(b *testing.B, serial string) mote.Identity {
	cert, key, err := l.masa.IssueIDevID(serial)
	if err != nil {
		b.Fatal(err)
	}
	return mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: l.masa.CA()}
}

func loopback() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

func startLab(b *testing.B) *lab {
	b.Helper()
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mcfgPath, err := masa.Init(filepath.Join(dir, "masa"), ln.Addr().String(), nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	mcfg, err := masa.LoadConfig(mcfgPath)
	if err != nil {
		b.Fatal(err)
	}
	m, cert, err := masa.Open(mcfg)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan struct{})
	go func() { m.ServeTLS(ctx, ln, cert); close(served) }()
	mfr, _ := filepath.Abs(filepath.Join(dir, "masa", masa.FileCA))
	cfgPath, err := gateway.Init(filepath.Join(dir, "gw"), gateway.InitOptions{ID: "bench", Manufacturers: []string{mfr}, MASACA: mfr, Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	gw, err := gwproc.Start(cfgPath, gwproc.Options{Profile: os.Getenv("TUMBLER_BENCH_GATEWAY_PROFILE")})
	if err != nil {
		b.Fatal(err)
	}
	return &lab{masa: m, gw: gw, close: func() { gw.Stop(); cancel(); <-served; m.Close() }}
}

// BenchmarkOnboarding runs complete cBRSKI onboardings (discovery, DTLS
// with the IDevID, voucher via the MASA over HTTPS, /vs, /sen, /es)
// against a gateway in a child process, 64 motes at a time. It reports
// onboardings per second and the gateway's CPU time per onboarding.
func BenchmarkOnboarding(b *testing.B) {
	l := startLab(b)
	defer l.close()
	ctx := context.Background()

	b.StopTimer()
	ids := make([]mote.Identity, b.N)
	for i := range ids {
		ids[i] = l.identity(b, "BENCH-"+itoa(i))
	}
	listen := loopback
	const conc = 64
	cpu0, err := l.gw.CPU()
	if err != nil {
		b.Fatal(err)
	}
	self0, err := gwproc.ProcCPU(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.StartTimer()

	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				p, err := mote.New(ids[i], mote.Config{Listen: listen})
				if err != nil {
					b.Error(err)
					return
				}
				if _, _, err := p.Onboard(ctx, l.gw.CoAPS); err != nil {
					failed.Add(1)
					b.Log(err)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	cpu1, err := l.gw.CPU()
	if err != nil {
		b.Fatal(err)
	}
	self1, err := gwproc.ProcCPU(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d onboardings failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "onboardings/s")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/float64(b.N), "gw-cpu-ms/op")
	// MASA and motes, in this process: with the gateway, what bounds
	// throughput on a shared two-core machine.
	b.ReportMetric(float64((self1-self0).Microseconds())/1000/float64(b.N), "lab-cpu-ms/op")
}

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}
