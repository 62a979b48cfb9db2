package testbed

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
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

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// Options describe a testbed run.
type Options struct {
	// Scenario is "" (onboard, check in) or ScenarioLifecycle.
	Scenario string
	// Motes is how many simulated devices onboard over loopback UDP.
	Motes int
	// Thread, BLE and IP are how many onboard over a simulated Thread mesh
	// (Joiner Router relay to the gateway's commissioner), over simulated
	// BLE (BTP over GATT), and over an IP link through a join proxy (half
	// stateful, half stateless JPY).
	Thread, BLE, IP int
	// Links shape the simulated links (loss, hops).
	Links LinkOptions
	// MTU is the DTLS record limit of registrar and motes (default 1024,
	// cBRSKI's assumed PMTU); smaller records mean fewer 6LoWPAN fragments.
	MTU int
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
	// Checkins is how many check-in rounds each mote runs after it
	// onboarded (0: none).
	Checkins int
	// TimeScale runs the gateway's record and check-in clock this many
	// times faster than real time (default 604800: a week per second).
	TimeScale float64
	// Upstream are upstream URLs (mqtt://, mqtts://, https://); the run
	// waits for the gateway to deliver every record to each before it
	// reports.
	Upstream []string
	// DrainTimeout bounds that wait (default 60 s).
	DrainTimeout time.Duration
}

// Report is the testbed's JSON report.
type Report struct {
	Scenario        string         `json:"scenario,omitempty"`
	Motes           int            `json:"motes"`
	Onboarded       int            `json:"onboarded"`
	Failed          int            `json:"failed"`
	Seed            uint64         `json:"seed"`
	DurationS       float64        `json:"duration_s"`
	OnboardingsPerS float64        `json:"onboardings_per_s"`
	OnboardP50Ms    float64        `json:"onboard_p50_ms"`
	OnboardP99Ms    float64        `json:"onboard_p99_ms"`
	OnboardMaxMs    float64        `json:"onboard_max_ms"`
	HandshakeP50Ms  float64        `json:"dtls_handshake_p50_ms"`
	Reconnects      int            `json:"reconnects"`
	CheckinsSent    int            `json:"checkins_sent"`
	CheckinsAcked   int            `json:"checkins_acked"`
	CheckinP50Ms    float64        `json:"checkin_p50_ms"`
	CheckinP99Ms    float64        `json:"checkin_p99_ms"`
	Records         int            `json:"records"`
	Delivered       map[string]int `json:"delivered,omitempty"`
	Parked          map[string]int `json:"parked,omitempty"`
	RecordsByType   map[string]int `json:"records_by_type,omitempty"`
	Failures        []Failure      `json:"failures,omitempty"`
	// Links reports per link kind (udp, thread, ble, ip-jp, ip-jpy) when
	// motes used more than loopback UDP.
	Links map[string]*LinkReport `json:"links,omitempty"`
	// Lifecycle is the lifecycle scenario's outcome.
	Lifecycle *LifecycleReport `json:"lifecycle,omitempty"`
}

// Failure is one mote that did not onboard.
type Failure struct {
	Serial string `json:"serial"`
	Error  string `json:"error"`
}

type moteResult struct {
	serial    string
	id        mote.Identity
	enr       *mote.Enrollment
	t         mote.Timings
	err       error
	sent      int
	acked     int
	checkins  []time.Duration
	onboarded time.Time // when onboarding (not check-ins) finished
	path      path
}

// Run starts a lab, onboards opts.Motes motes concurrently over loopback
// UDP and reports. It returns an error only if the lab itself fails; mote
// failures are in the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Scenario == "" && o.Motes+o.Thread+o.BLE+o.IP < 1 {
		return nil, fmt.Errorf("testbed: motes: %d must be at least 1", o.Motes)
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"motes", o.Motes}, {"thread", o.Thread}, {"ble", o.BLE}, {"ip", o.IP}} {
		if c.n < 0 {
			return nil, fmt.Errorf("testbed: %s: %d is negative", c.name, c.n)
		}
	}
	if o.Links.Loss < 0 || o.Links.Loss >= 1 {
		return nil, fmt.Errorf("testbed: loss: %v is not in [0, 1)", o.Links.Loss)
	}
	if o.Links.Hops < 0 || o.Links.Hops > 32 {
		return nil, fmt.Errorf("testbed: hops: %d is not in 1..32", o.Links.Hops)
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
	if o.TimeScale <= 0 {
		o.TimeScale = 7 * 24 * 3600
	}
	switch o.Scenario {
	case "":
	case ScenarioLifecycle:
		return runLifecycle(ctx, o, dir)
	default:
		return nil, fmt.Errorf("testbed: scenario: %q is not %q", o.Scenario, ScenarioLifecycle)
	}
	clock := scaledClock(o.TimeScale)
	var sinks []upstream.SinkConfig
	for _, u := range o.Upstream {
		sc, err := upstream.ParseSinkURL(u)
		if err != nil {
			return nil, fmt.Errorf("testbed: upstream %q: %w", u, err)
		}
		for _, prev := range sinks {
			if prev.Name == sc.Name {
				sc.Name = fmt.Sprintf("%s-%d", sc.Name, len(sinks)+1)
			}
		}
		sinks = append(sinks, sc)
	}
	lab, err := StartLab(ctx, dir, LabOptions{Log: o.Log, Upstream: sinks, GatewayOptions: []gateway.Option{gateway.WithRecordClock(clock)},
		Configure: func(c *gateway.Config) {
			if o.MTU > 0 {
				c.Registrar.MTU = o.MTU
			}
		}})
	if err != nil {
		return nil, err
	}
	defer lab.Close()

	// The links, and the kind of each mote.
	kinds := make([]string, 0, o.Motes+o.Thread+o.BLE+o.IP)
	for range o.Motes {
		kinds = append(kinds, LinkUDP)
	}
	for range o.Thread {
		kinds = append(kinds, LinkThread)
	}
	for range o.BLE {
		kinds = append(kinds, LinkBLE)
	}
	for i := range o.IP {
		kinds = append(kinds, []string{LinkJP, LinkJPY}[i%2])
	}
	need := map[string]bool{}
	for _, k := range kinds {
		need[k] = true
	}
	o.Links.Seed = o.Seed
	lk, err := startLinks(ctx, lab, need, o.Links, o.Log)
	if err != nil {
		return nil, err
	}
	defer lk.close()

	// Devices are made before the clock starts: manufacturing is not
	// onboarding.
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	results := make([]*moteResult, len(kinds))
	perKind := map[string]int{}
	for i, kind := range kinds {
		perKind[kind]++
		serial := fmt.Sprintf("TB%d-%05d", o.Seed, i+1)
		if kind != LinkUDP {
			serial = fmt.Sprintf("TB%d-%s-%05d", o.Seed, kind, perKind[kind])
		}
		cert, key, err := lab.MASA.IssueIDevID(serial)
		if err != nil {
			return nil, err
		}
		results[i] = &moteResult{serial: serial, id: mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: lab.MASA.CA()},
			path: lk.pathFor(kind, perKind[kind], serial, lab)}
	}
	order := rng.Perm(len(results))
	o.Motes = len(results)

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
			r.enr, r.t, r.err = onboardOne(ctx, lab, r, o)
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
	if len(need) > 1 || !need[LinkUDP] {
		rep.Links = map[string]*LinkReport{}
		times := map[string][]time.Duration{}
		for _, r := range results {
			lr := rep.Links[r.path.kind]
			if lr == nil {
				lr = &LinkReport{}
				rep.Links[r.path.kind] = lr
			}
			lr.Motes++
			lr.Reconnects += r.t.Reconnects
			if r.err != nil {
				lr.Failed++
				continue
			}
			lr.Onboarded++
			times[r.path.kind] = append(times[r.path.kind], r.t.Total)
		}
		for k, lr := range rep.Links {
			d := times[k]
			lr.OnboardP50Ms, lr.OnboardP99Ms, lr.OnboardMaxMs = ms(quantile(d, 0.50)), ms(quantile(d, 0.99)), ms(quantile(d, 1))
		}
		lk.stats(rep.Links)
	}
	var last time.Time
	for _, r := range results {
		if r.onboarded.After(last) {
			last = r.onboarded
		}
	}
	rep.OnboardingsPerS = float64(rep.Onboarded) / last.Sub(start).Seconds()
	rep.OnboardP50Ms, rep.OnboardP99Ms, rep.OnboardMaxMs = ms(quantile(total, 0.50)), ms(quantile(total, 0.99)), ms(quantile(total, 1))
	rep.HandshakeP50Ms = ms(quantile(hs, 0.50))
	var ci []time.Duration
	for _, r := range results {
		rep.CheckinsSent += r.sent
		rep.CheckinsAcked += r.acked
		ci = append(ci, r.checkins...)
	}
	rep.CheckinP50Ms, rep.CheckinP99Ms = ms(quantile(ci, 0.50)), ms(quantile(ci, 0.99))
	if len(sinks) > 0 {
		if o.DrainTimeout <= 0 {
			o.DrainTimeout = time.Minute
		}
		dctx, cancel := context.WithTimeout(ctx, o.DrainTimeout)
		var names []string
		for _, s := range sinks {
			names = append(names, s.Name)
		}
		err := lab.WaitDelivered(dctx, names)
		cancel()
		if err != nil {
			return nil, err
		}
		rep.Delivered, rep.Parked = map[string]int{}, map[string]int{}
		for _, n := range names {
			total, err := lab.Gateway.Store().OutboxCursorCount(ctx, n)
			if err != nil {
				return nil, err
			}
			parked, err := lab.Gateway.Store().ParkedRecords(ctx, n, 0)
			if err != nil {
				return nil, err
			}
			rep.Delivered[n], rep.Parked[n] = total-len(parked), len(parked)
		}
	}
	if rep.RecordsByType, err = lab.Gateway.Store().CountRecords(ctx); err != nil {
		return rep, err
	}
	for _, n := range rep.RecordsByType {
		rep.Records += n
	}
	if o.Artifacts != "" {
		if err := saveArtifacts(ctx, o.Artifacts, lab, results); err != nil {
			return rep, fmt.Errorf("testbed: artifacts: %w", err)
		}
	}
	return rep, nil
}

// onboardOne onboards one mote and, if asked, provisions its OSCORE
// context and runs its check-in rounds, sleeping between them for the due
// time the gateway gave divided by the time scale.
func onboardOne(ctx context.Context, lab *Lab, r *moteResult, o Options) (*mote.Enrollment, mote.Timings, error) {
	cfg := mote.Config{Log: o.Log, Listen: r.path.listen, MTU: o.MTU}
	if r.path.kind != LinkUDP {
		// Lossy links: more patience before a session is given up.
		cfg.HandshakeTimeout, cfg.Attempts = 60*time.Second, 6
		cfg.Transmission = o.Links.Transmission
		if cfg.Transmission == (coap.Transmission{}) {
			cfg.Transmission = DefaultLinkTransmission
		}
	}
	p, err := mote.New(r.id, cfg)
	if err != nil {
		return nil, mote.Timings{}, err
	}
	addr, err := r.path.registrar(ctx, p)
	if err != nil {
		return nil, mote.Timings{}, err
	}
	enr, t, err := p.Onboard(ctx, addr)
	r.onboarded = time.Now()
	if err != nil || o.Checkins == 0 || r.path.kind != LinkUDP {
		return enr, t, err
	}
	oc, err := p.Provision(ctx, addr, enr)
	if err != nil {
		return enr, t, err
	}
	k, err := p.NewChecker(ctx, lab.CoAP, oc)
	if err != nil {
		return enr, t, err
	}
	defer k.Close()
	battery := uint8(100)
	for round := range o.Checkins {
		r.sent++
		t0 := time.Now()
		ans, err := k.CheckIn(ctx, mote.Status{Uptime: uint64(round) * 604800, Firmware: "1.0.0", Battery: &battery, Reboots: 1})
		if err != nil {
			return enr, t, fmt.Errorf("check-in %d: %w", round+1, err)
		}
		r.checkins = append(r.checkins, time.Since(t0))
		r.acked++
		battery--
		if round+1 < o.Checkins {
			select {
			case <-time.After(time.Duration(float64(ans.Due) / o.TimeScale)):
			case <-ctx.Done():
				return enr, t, ctx.Err()
			}
		}
	}
	return enr, t, nil
}

// scaledClock runs scale times faster than real time from now on.
func scaledClock(scale float64) func() time.Time {
	start := time.Now()
	return func() time.Time { return start.Add(time.Duration(float64(time.Since(start)) * scale)) }
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
	errs = append(errs, saveRecords(ctx, dir, lab))
	return errors.Join(errs...)
}

// saveRecords writes every record, one COSE file each named by sequence
// number so that a shell glob lists them in order, and the record signer's
// certificate and public key.
func saveRecords(ctx context.Context, dir string, lab *Lab) error {
	rd := filepath.Join(dir, "records")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return err
	}
	var after uint64
	for {
		recs, err := lab.Gateway.Store().Records(ctx, store.RecordFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if err := os.WriteFile(filepath.Join(rd, fmt.Sprintf("%08d-%s.cose", r.Seq, r.Type)), r.COSE, 0o644); err != nil {
				return err
			}
			after = r.Seq
		}
	}
	cert := lab.Gateway.RecordsCert()
	pub, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "gateway-records.pem"), pki.EncodeCerts(cert), 0o644),
		os.WriteFile(filepath.Join(dir, "gateway.pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644),
	)
}
