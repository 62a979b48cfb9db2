package testbed

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// Options describe a testbed run.
type Options struct {
	// Motes is how many simulated devices onboard.
	Motes int
	// Seed makes a run replayable: it names the devices and orders their
	// start. (Keys and nonces are always fresh: they come from crypto/rand.)
	Seed uint64
	// Concurrency bounds how many motes onboard at once (default: all).
	Concurrency int
	// Dir holds the lab's files (default: a temporary directory, removed
	// afterwards).
	Dir string
	// Artifacts, if set, receives per-mote PVR, RVR, voucher, LDevID and CA
	// certificates.
	Artifacts string
	// Log is the lab's logger (gateway, MASA, motes).
	Log zerolog.Logger
	// Progress is called after each mote finishes.
	Progress func(done, failed, total int)
	// Timeout bounds the whole run (default 5 minutes).
	Timeout time.Duration
}

// Report is the testbed's JSON report.
type Report struct {
	Motes           int       `json:"motes"`
	Onboarded       int       `json:"onboarded"`
	Failed          int       `json:"failed"`
	Seed            uint64    `json:"seed"`
	DurationS       float64   `json:"duration_s"`
	OnboardingsPerS float64   `json:"onboardings_per_s"`
	OnboardP50Ms    float64   `json:"onboard_p50_ms"`
	OnboardP99Ms    float64   `json:"onboard_p99_ms"`
	OnboardMaxMs    float64   `json:"onboard_max_ms"`
	HandshakeP50Ms  float64   `json:"dtls_handshake_p50_ms"`
	Reconnects      int       `json:"reconnects"`
	Failures        []Failure `json:"failures,omitempty"`
}

// Failure is one mote that did not onboard.
type Failure struct {
	Serial string `json:"serial"`
	Error  string `json:"error"`
}

type moteResult struct {
	serial string
	id     mote.Identity
	enr    *mote.Enrollment
	t      mote.Timings
	err    error
}

// Run starts a lab, onboards opts.Motes motes concurrently over loopback
// UDP and reports. It returns an error only if the lab itself fails; mote
// failures are in the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Motes < 1 {
		return nil, fmt.Errorf("testbed: motes: %d must be at least 1", o.Motes)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tumbler-testbed-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	lab, err := StartLab(ctx, dir, LabOptions{Log: o.Log})
	if err != nil {
		return nil, err
	}
	defer lab.Close()

	// Devices are made before the clock starts: manufacturing is not
	// onboarding.
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	results := make([]*moteResult, o.Motes)
	for i := range results {
		serial := fmt.Sprintf("TB%d-%05d", o.Seed, i+1)
		cert, key, err := lab.MASA.IssueIDevID(serial)
		if err != nil {
			return nil, err
		}
		results[i] = &moteResult{serial: serial, id: mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: lab.MASA.CA()}}
	}
	order := rng.Perm(o.Motes)

	conc := o.Concurrency
	if conc <= 0 || conc > o.Motes {
		conc = o.Motes
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done, failed := 0, 0
	start := time.Now()
	for _, i := range order {
		r := results[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.enr, r.t, r.err = onboardOne(ctx, lab, r.id, o.Log)
			mu.Lock()
			done++
			if r.err != nil {
				failed++
				o.Log.Warn().Str("serial", r.serial).Err(r.err).Msg("mote failed")
			}
			if o.Progress != nil {
				o.Progress(done, failed, o.Motes)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	rep := &Report{Motes: o.Motes, Seed: o.Seed, DurationS: elapsed.Seconds()}
	var total, hs []time.Duration
	for _, r := range results {
		rep.Reconnects += r.t.Reconnects
		if r.err != nil {
			rep.Failed++
			rep.Failures = append(rep.Failures, Failure{Serial: r.serial, Error: r.err.Error()})
			continue
		}
		rep.Onboarded++
		total = append(total, r.t.Total)
		hs = append(hs, r.t.Handshake)
	}
	rep.OnboardingsPerS = float64(rep.Onboarded) / elapsed.Seconds()
	rep.OnboardP50Ms, rep.OnboardP99Ms, rep.OnboardMaxMs = ms(quantile(total, 0.50)), ms(quantile(total, 0.99)), ms(quantile(total, 1))
	rep.HandshakeP50Ms = ms(quantile(hs, 0.50))
	if o.Artifacts != "" {
		if err := saveArtifacts(ctx, o.Artifacts, lab, results); err != nil {
			return rep, fmt.Errorf("testbed: artifacts: %w", err)
		}
	}
	return rep, nil
}

func onboardOne(ctx context.Context, lab *Lab, id mote.Identity, log zerolog.Logger) (*mote.Enrollment, mote.Timings, error) {
	p, err := mote.New(id, mote.Config{Log: log, Listen: loopbackUDP})
	if err != nil {
		return nil, mote.Timings{}, err
	}
	addr, err := p.Discover(ctx, lab.CoAP)
	if err != nil {
		return nil, mote.Timings{}, err
	}
	return p.Onboard(ctx, addr)
}

func loopbackUDP() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteReport writes r as indented JSON.
func WriteReport(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// saveArtifacts writes, per mote, the signed artifacts of its onboarding
// and its certificates: pvr.cose and voucher.cose as the pledge sent and
// received them, rvr.cose and masa-voucher.cose as the registrar sent and
// received them, and PEM certificates.
func saveArtifacts(ctx context.Context, dir string, lab *Lab, results []*moteResult) error {
	var errs []error
	for _, r := range results {
		if r.err != nil {
			continue
		}
		d := filepath.Join(dir, r.serial)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		x, err := lab.Gateway.Store().LatestVoucher(ctx, store.DeviceID(pki.DeviceID(r.id.IDevID())))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.serial, err))
			continue
		}
		for _, f := range []struct {
			name string
			data []byte
		}{
			{"pvr.cose", r.enr.PVR},
			{"rvr.cose", x.RVR},
			{"masa-voucher.cose", x.Voucher},
			{"voucher.cose", r.enr.Voucher},
			{"idevid.pem", pki.EncodeCerts(r.id.Chain...)},
			{"ldevid.pem", pki.EncodeCerts(r.enr.LDevID)},
			{"domain-ca.pem", pki.EncodeCerts(r.enr.DomainCAs...)},
			{"manufacturer-ca.pem", pki.EncodeCerts(lab.MASA.CA())},
			{"registrar.pem", pki.EncodeCerts(r.enr.Registrar...)},
		} {
			if err := os.WriteFile(filepath.Join(d, f.name), f.data, 0o644); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
