package testbed

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap/oscore"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/ownership"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/masa"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// ScenarioLifecycle is the ownership scenario: two domains, one MASA.
const ScenarioLifecycle = "lifecycle"

// Lifecycle roles, in the order motes are given them.
const (
	roleRepossess    = "repossess"
	roleReset        = "reset"
	roleDecommission = "decommission"
	roleDelegate     = "delegate"
	roleDeviceReset  = "device-reset"
	roleTransfer     = "transfer"
)

// LifecycleMinMotes is the fewest motes the scenario needs: one per role.
const LifecycleMinMotes = 6

// LifecycleReport is the lifecycle scenario's part of the report.
type LifecycleReport struct {
	// Completed is true when every step succeeded.
	Completed bool   `json:"completed"`
	Steps     []Step `json:"steps"`
	// Transferred is how many motes moved from domain A to domain B.
	Transferred int `json:"transferred"`
	// TransferTimeMs: from the old owner's transfer call to the device's
	// enrollment with the new owner (p50 and max over transferred motes).
	TransferTimeP50Ms float64 `json:"transfer_time_p50_ms"`
	TransferTimeMaxMs float64 `json:"transfer_time_max_ms"`
	// RebootstrapP50Ms: from the check-in answer that told the device to
	// re-bootstrap to its enrollment and OSCORE context with the new owner
	// (the transfer time less the wait for that check-in).
	RebootstrapP50Ms float64 `json:"rebootstrap_p50_ms"`
	// TransferCompleteMs: from the transfer call to the old owner's
	// "transfer" (out) record, its credentials revoked (max).
	TransferCompleteMaxMs float64 `json:"transfer_complete_max_ms"`
	// MissedCheckins counts check-ins transferred devices missed: a
	// scheduled check-in no owner acknowledged, plus misses either
	// gateway recorded for them. Target 0.
	MissedCheckins int `json:"missed_checkins"`
	// DelegatedRecords is how many records the delegate's upstream got.
	DelegatedRecords int `json:"delegated_records"`
	// Records and RecordsByType per domain ("a", "b").
	Records       map[string]int            `json:"records"`
	RecordsByType map[string]map[string]int `json:"records_by_type"`
	// Verified per domain: "ok" when every record's signature and every
	// device chain verify (as `tumbler record verify --chain`), else why.
	Verified map[string]string `json:"verified"`
}

// Step is one scenario step and its outcome.
type Step struct {
	Step   string  `json:"step"`
	Serial string  `json:"serial,omitempty"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail"`
	Ms     float64 `json:"ms"`
}

// lifeMote is a mote living its life: a check-in loop that follows its
// owner's instructions, which the scenario can pause to act on the
// device itself.
type lifeMote struct {
	serial string
	idHex  string
	role   string
	dev    *mote.Device
	scale  float64
	log    zerolog.Logger

	busy   sync.Mutex // held during one check-in (and what follows)
	mu     sync.Mutex
	paused bool
	sent   int
	acked  int
	missed int
	atB    int // check-ins acknowledged by domain B
	events chan lifeEvent
}

// lifeEvent is an action a mote carried out.
type lifeEvent struct {
	action string
	took   time.Duration // carrying it out, from the check-in answer
	net    mote.Network
	old    oldCreds
	at     time.Time
	err    error
}

type oldCreds struct {
	net mote.Network
	enr *mote.Enrollment
	oc  *oscore.Context
}

func (m *lifeMote) pause() {
	m.busy.Lock()
	m.mu.Lock()
	m.paused = true
	m.mu.Unlock()
	m.busy.Unlock()
}

func (m *lifeMote) resume() {
	m.mu.Lock()
	m.paused = false
	m.mu.Unlock()
}

// run checks in whenever the gateway said the next one is due (scaled),
// until ctx ends.
func (m *lifeMote) run(ctx context.Context, b *Lab) {
	battery := uint8(100)
	wait := time.Duration(0)
	for round := uint64(0); ; round++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		m.busy.Lock()
		m.mu.Lock()
		paused := m.paused
		m.mu.Unlock()
		if paused {
			m.busy.Unlock()
			wait = 50 * time.Millisecond
			continue
		}
		n, enr, oc := m.dev.Credentials()
		ans, err := m.dev.CheckIn(ctx, mote.Status{Uptime: round * 604800, Firmware: "1.0.0", Battery: &battery, Reboots: 1})
		m.mu.Lock()
		m.sent++
		if err != nil {
			if ctx.Err() == nil {
				m.missed++
				m.log.Warn().Err(err).Str("serial", m.serial).Msg("check-in not acknowledged")
			}
		} else {
			m.acked++
			if sameAddr(n.CoAP, b.CoAP) {
				m.atB++
			}
		}
		m.mu.Unlock()
		if err != nil {
			m.busy.Unlock()
			wait = time.Duration(float64(checkinInterval) / m.scale)
			continue
		}
		if ans.Action != "" {
			t0 := time.Now()
			nn, _, ferr := m.dev.Follow(ctx, ans)
			select {
			case m.events <- lifeEvent{action: ans.Action, took: time.Since(t0), net: nn, old: oldCreds{n, enr, oc}, at: time.Now(), err: ferr}:
			default:
			}
			if ferr != nil {
				m.log.Warn().Err(ferr).Str("serial", m.serial).Str("action", ans.Action).Msg("action failed; keeping the current credentials")
			}
		}
		m.busy.Unlock()
		battery = max(battery-1, 1)
		wait = time.Duration(float64(ans.Due) / m.scale)
	}
}

// checkinInterval is the default class's interval: the retry pace of a
// mote whose check-in failed.
const checkinInterval = 7 * 24 * time.Hour

func sameAddr(a, b net.Addr) bool { return a != nil && b != nil && a.String() == b.String() }

// lifecycle is one run of the scenario.
type lifecycle struct {
	o       Options
	a, b    *Lab
	ra      *ecdsa.PrivateKey // the recovery authority
	motes   []*lifeMote
	rep     LifecycleReport
	mu      sync.Mutex
	xferDur []time.Duration
	xferEnd []time.Duration
	reboot  []time.Duration
	notice  time.Duration
}

func (l *lifecycle) step(name, serial string, start time.Time, err error, detail string) bool {
	s := Step{Step: name, Serial: serial, OK: err == nil, Detail: detail, Ms: ms(time.Since(start))}
	if err != nil {
		s.Detail = err.Error()
		l.o.Log.Error().Str("step", name).Str("serial", serial).Err(err).Msg("lifecycle step failed")
	} else {
		l.o.Log.Info().Str("step", name).Str("serial", serial).Str("detail", detail).Msg("lifecycle step")
	}
	l.mu.Lock()
	l.rep.Steps = append(l.rep.Steps, s)
	l.mu.Unlock()
	return err == nil
}

// runLifecycle runs the lifecycle scenario: domains A and B share a MASA;
// every mote onboards to A and checks in; then, concurrently, some motes
// are transferred to B (make-before-break, checked for missed
// check-ins), one is repossessed by B, one reset by A's operator, one
// reset on the device, one decommissioned (and readmitted), one's records
// delegated; finally both domains' records are verified.
func runLifecycle(ctx context.Context, o Options, dir string) (*Report, error) {
	if o.Motes < LifecycleMinMotes {
		return nil, fmt.Errorf("testbed: motes: the lifecycle scenario needs at least %d", LifecycleMinMotes)
	}
	start := time.Now()
	l := &lifecycle{o: o, notice: 3 * time.Second}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	l.ra = key
	raPub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	raFile := filepath.Join(dir, "recovery-authority.pub.pem")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(raFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: raPub}), 0o644); err != nil {
		return nil, err
	}
	clock := scaledClock(o.TimeScale)
	l.a, err = StartLab(ctx, filepath.Join(dir, "a"), LabOptions{
		Log: o.Log.With().Str("domain", "a").Logger(), Domain: "Domain A", ID: "gateway-a",
		GatewayOptions: []gateway.Option{gateway.WithRecordClock(clock)},
		MASAConfig: func(c *masa.Config) {
			c.RecoveryAuthorities = []string{raFile}
			c.RepossessionNotice = l.notice
		},
	})
	if err != nil {
		return nil, err
	}
	defer l.a.Close()
	l.b, err = StartLab(ctx, filepath.Join(dir, "b"), LabOptions{
		Log: o.Log.With().Str("domain", "b").Logger(), Domain: "Domain B", ID: "gateway-b", SharedMASA: l.a,
		Policy: string(registrar.Expected), GatewayOptions: []gateway.Option{gateway.WithRecordClock(clock)},
	})
	if err != nil {
		return nil, err
	}
	defer l.b.Close()

	if err := l.onboardAll(ctx); err != nil {
		return nil, err
	}
	lctx, stop := context.WithCancel(ctx)
	var loops sync.WaitGroup
	for _, m := range l.motes {
		if m.dev.Enrollment() == nil {
			continue
		}
		loops.Add(1)
		go func() { defer loops.Done(); m.run(lctx, l.b) }()
	}
	defer func() { stop(); loops.Wait() }()
	// Two rounds of check-ins with the first owner.
	l.waitAcked(ctx, 2, func(*lifeMote) bool { return true })

	var wg sync.WaitGroup
	for _, m := range l.motes {
		var f func(context.Context, *lifeMote)
		switch m.role {
		case roleTransfer:
			f = l.transfer
		case roleRepossess:
			f = l.repossess
		case roleReset:
			f = l.reset
		case roleDeviceReset:
			f = l.deviceReset
		case roleDecommission:
			f = l.decommission
		case roleDelegate:
			f = l.delegate
		}
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx, m) }()
	}
	wg.Wait()
	// Transferred motes keep checking in, now with B.
	l.waitAcked(ctx, 2, func(m *lifeMote) bool { return m.role == roleTransfer })
	stop()
	loops.Wait()

	rep := &Report{Scenario: ScenarioLifecycle, Motes: o.Motes, Seed: o.Seed}
	for _, m := range l.motes {
		rep.CheckinsSent += m.sent
		rep.CheckinsAcked += m.acked
		if m.role == roleTransfer {
			l.rep.MissedCheckins += m.missed
		}
	}
	if err := l.gatewayMisses(ctx); err != nil {
		return nil, err
	}
	for _, m := range l.motes {
		if m.dev.Enrollment() != nil {
			rep.Onboarded++
		}
	}
	rep.Failed = o.Motes - rep.Onboarded
	l.rep.Transferred = len(l.xferDur)
	l.rep.TransferTimeP50Ms, l.rep.TransferTimeMaxMs = ms(quantile(l.xferDur, 0.5)), ms(quantile(l.xferDur, 1))
	l.rep.TransferCompleteMaxMs = ms(quantile(l.xferEnd, 1))
	l.rep.RebootstrapP50Ms = ms(quantile(l.reboot, 0.5))
	l.rep.Records, l.rep.RecordsByType, l.rep.Verified = map[string]int{}, map[string]map[string]int{}, map[string]string{}
	for name, lab := range map[string]*Lab{"a": l.a, "b": l.b} {
		n, byType, verr := verifyRecords(ctx, filepath.Join(dir, "records-"+name), o.Artifacts, name, lab)
		l.rep.Records[name], l.rep.RecordsByType[name] = n, byType
		l.rep.Verified[name] = "ok"
		if verr != nil {
			l.rep.Verified[name] = verr.Error()
		}
		rep.Records += n
	}
	l.rep.Completed = l.rep.MissedCheckins == 0 && l.rep.Verified["a"] == "ok" && l.rep.Verified["b"] == "ok"
	for _, s := range l.rep.Steps {
		l.rep.Completed = l.rep.Completed && s.OK
	}
	sort.SliceStable(l.rep.Steps, func(i, j int) bool { return l.rep.Steps[i].Step < l.rep.Steps[j].Step })
	rep.DurationS = time.Since(start).Seconds()
	rep.Lifecycle = &l.rep
	return rep, nil
}

// onboardAll makes the motes, gives them roles (seeded) and onboards each
// to domain A with an OSCORE context.
func (l *lifecycle) onboardAll(ctx context.Context) error {
	roles := []string{roleRepossess, roleReset, roleDecommission, roleDelegate, roleDeviceReset}
	for len(roles) < l.o.Motes {
		roles = append(roles, roleTransfer)
	}
	perm := seededPerm(l.o.Seed, l.o.Motes)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range l.o.Motes {
		serial := fmt.Sprintf("TB%d-%05d", l.o.Seed, i+1)
		cert, key, err := l.a.MASA.IssueIDevID(serial)
		if err != nil {
			return err
		}
		p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: l.a.MASA.CA()},
			mote.Config{Log: l.o.Log, Listen: loopbackUDP})
		if err != nil {
			return err
		}
		id := pki.DeviceID(cert)
		m := &lifeMote{serial: serial, idHex: hex.EncodeToString(id[:]), role: roles[perm[i]],
			dev: mote.NewDevice(p, l.resolve), scale: l.o.TimeScale, log: l.o.Log, events: make(chan lifeEvent, 4)}
		l.motes = append(l.motes, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			_, err := m.dev.Join(ctx, mote.Network{CoAP: l.a.CoAP})
			l.step("onboard", m.serial, t0, err, "enrolled with domain A, OSCORE context provisioned (role "+m.role+")")
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) == len(l.motes) {
		return fmt.Errorf("testbed: no mote onboarded: %w", errs[0])
	}
	return nil
}

// resolve maps a registrar hint to the lab it names.
func (l *lifecycle) resolve(hint string) (mote.Network, error) {
	for _, lab := range []*Lab{l.a, l.b} {
		if hint == "coaps://"+lab.CoAPS.String() {
			return mote.Network{CoAP: lab.CoAP, CoAPS: lab.CoAPS}, nil
		}
	}
	return mote.Network{}, fmt.Errorf("testbed: no lab at %q", hint)
}

func seededPerm(seed uint64, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	// Fisher-Yates with a splitmix64 stream: replayable from the seed.
	x := seed
	for i := n - 1; i > 0; i-- {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		j := int(z % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// waitAcked waits until every selected mote has rounds more check-ins
// acknowledged than now (bounded by a minute).
func (l *lifecycle) waitAcked(ctx context.Context, rounds int, sel func(*lifeMote) bool) {
	target := map[*lifeMote]int{}
	for _, m := range l.motes {
		if sel(m) && m.dev.Enrollment() != nil {
			m.mu.Lock()
			target[m] = m.acked + rounds
			m.mu.Unlock()
		}
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for m, t := range target {
			m.mu.Lock()
			done = done && m.acked >= t
			m.mu.Unlock()
		}
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitEvent waits for the mote to carry out an action.
func waitEvent(ctx context.Context, m *lifeMote, action string, timeout time.Duration) (lifeEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case e := <-m.events:
			if e.action != action {
				continue
			}
			if e.err != nil {
				// A failed attempt keeps the old credentials; the next
				// check-in answer repeats the instruction.
				continue
			}
			return e, nil
		case <-t.C:
			return lifeEvent{}, fmt.Errorf("no %q carried out within %v", action, timeout)
		case <-ctx.Done():
			return lifeEvent{}, ctx.Err()
		}
	}
}

// waitState polls a gateway until a device is in state.
func waitState(ctx context.Context, lab *Lab, id, state string, timeout time.Duration) (ownership.DeviceDetail, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := lab.API.GetDevice(ctx, id)
		if err == nil && d.State == state {
			return d, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return d, err
			}
			return d, fmt.Errorf("device is %s, not %s, after %v", d.State, state, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitClaim waits until lab shows the device's repossession claims with the
// given statuses, in order (the MASA's claims feed, as the gateway
// recorded it).
func waitClaim(ctx context.Context, lab *Lab, id string, timeout time.Duration, statuses ...string) (ownership.DeviceDetail, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := lab.API.GetDevice(ctx, id)
		if err == nil {
			var got []string
			for _, c := range d.Claims {
				got = append(got, c.Status)
			}
			if slices.Equal(got, statuses) {
				return d, nil
			}
			if time.Now().After(deadline) {
				return d, fmt.Errorf("claims %v, want %v, after %v", got, statuses, timeout)
			}
		} else if time.Now().After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// repossessSides lists the sides of the device's repossess records.
func repossessSides(d ownership.DeviceDetail) ([]string, error) {
	var sides []string
	for _, r := range d.Records {
		if r.Type != string(record.TypeRepossess) {
			continue
		}
		rec, err := record.Parse(r.COSE)
		if err != nil {
			return nil, err
		}
		var b record.RepossessBody
		if err := rec.Record.DecodeBody(&b); err != nil {
			return nil, err
		}
		sides = append(sides, cmp.Or(b.Side, "in"))
	}
	return sides, nil
}

func hasRecord(d ownership.DeviceDetail, typ string) int {
	n := 0
	for _, r := range d.Records {
		if r.Type == typ {
			n++
		}
	}
	return n
}

// transfer hands a mote from A to B: A's operator authorises B, B's
// expects the device with the authorisation, the device re-bootstraps at
// its next check-in, A revokes once the MASA shows B has it. Then the old
// owner must be unable to reach the device's identity: no check-in with
// the old context, no DTLS with the old LDevID, no operation.
func (l *lifecycle) transfer(ctx context.Context, m *lifeMote) {
	t0 := time.Now()
	caB := string(pki.EncodeCerts(l.b.Gateway.DomainCA()))
	res, err := l.a.API.Transfer(ctx, m.idHex, ownership.TransferRequest{NewOwnerCA: caB, Registrar: "coaps://" + l.b.CoAPS.String()})
	if !l.step("transfer-authorize", m.serial, t0, err, "A signed a transfer authorisation to B and registered it with the MASA") {
		return
	}
	t1 := time.Now()
	_, err = l.b.API.Expect(ctx, ownership.ExpectRequest{Authorization: res.Authorization, Note: "bought from A"})
	if !l.step("transfer-expect", m.serial, t1, err, "B expects the device with A's authorisation") {
		return
	}
	ev, err := waitEvent(ctx, m, mote.ActionRebootstrap, time.Minute)
	if err == nil && !sameAddr(ev.net.CoAP, l.b.CoAP) {
		err = fmt.Errorf("re-bootstrapped to %v, not B", ev.net.CoAP)
	}
	if !l.step("transfer-enroll", m.serial, t0, err, "told at its check-in; enrolled with B keeping A's credentials until then") {
		return
	}
	enrolled := ev.at.Sub(t0)
	dA, err := waitState(ctx, l.a, m.idHex, "transferred", 30*time.Second)
	if err == nil && hasRecord(dA, string(record.TypeTransfer)) != 1 {
		err = errors.New("A has no transfer (out) record")
	}
	if !l.step("transfer-complete", m.serial, t0, err, "A saw B's voucher at the MASA, revoked the LDevID, deleted the context, recorded transfer out") {
		return
	}
	done := time.Since(t0)
	dB, err := l.b.API.GetDevice(ctx, m.idHex)
	if err == nil && hasRecord(dB, string(record.TypeTransfer)) != 1 {
		err = errors.New("B has no transfer (in) record")
	}
	l.step("transfer-in-record", m.serial, t0, err, "B recorded transfer in, naming the authorisation")
	l.mu.Lock()
	l.xferDur, l.xferEnd, l.reboot = append(l.xferDur, enrolled), append(l.xferEnd, done), append(l.reboot, ev.took)
	l.mu.Unlock()
	l.oldOwnerLockedOut(ctx, m, ev.old)
}

// oldOwnerLockedOut checks that A can no longer check in or operate the
// transferred device.
func (l *lifecycle) oldOwnerLockedOut(ctx context.Context, m *lifeMote, old oldCreds) {
	t0 := time.Now()
	err := func() error {
		k, err := m.dev.Pledge().NewChecker(ctx, l.a.CoAP, old.oc)
		if err != nil {
			return err
		}
		defer k.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = k.CheckIn(cctx, mote.Status{Firmware: "1.0.0"})
		if unauthorized(err) {
			return nil
		}
		return fmt.Errorf("check-in with the old context: want 4.01, got %v", err)
	}()
	l.step("old-owner-checkin-refused", m.serial, t0, err, "A answers the old OSCORE context with 4.01")
	t1 := time.Now()
	err = func() error {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		_, err := m.dev.Pledge().Provision(cctx, old.net.CoAPS, old.enr)
		if err == nil {
			return errors.New("A accepted a DTLS session with the revoked LDevID")
		}
		return nil
	}()
	l.step("old-owner-dtls-refused", m.serial, t1, err, "A refuses DTLS with the revoked LDevID")
	t2 := time.Now()
	_, err = l.a.API.Reset(ctx, m.idHex, ownership.ResetRequest{})
	if errors.Is(err, ownership.ErrConflict) {
		err = nil
	} else {
		err = fmt.Errorf("reset by the old owner: want 409, got %v", err)
	}
	l.step("old-owner-operation-refused", m.serial, t2, err, "A's API refuses to operate a transferred device (409)")
}

// repossess: B claims a device whose owner (A) is gone, with the label's
// secret and a recovery authority's order; claims missing either are
// refused; the MASA holds the voucher until the notice ends.
func (l *lifecycle) repossess(ctx context.Context, m *lifeMote) {
	m.pause() // the device is in the new owner's hands now
	t0 := time.Now()
	ownerB := transfer.SPKIHash(l.b.Gateway.DomainCA())
	secret := hex.EncodeToString(l.a.MASA.LabelSecret(m.serial))
	order, err := transfer.SignOrder(rand.Reader, l.ra, &transfer.Order{Serial: m.serial, NewOwner: ownerB, IssuedAt: time.Now(), Reason: "court order: owner insolvent"})
	if err != nil {
		l.step("repossess", m.serial, t0, err, "")
		return
	}
	// Without the order, and with an order from an unknown authority.
	_, err = l.b.API.Repossess(ctx, ownership.RepossessRequest{Serial: m.serial, QRSecret: secret})
	l.step("repossess-without-order-refused", m.serial, t0, expectErr(err, ownership.ErrInvalid), "400 order: required")
	rogue, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad, _ := transfer.SignOrder(rand.Reader, rogue, &transfer.Order{Serial: m.serial, NewOwner: ownerB, IssuedAt: time.Now(), Reason: "forged"})
	t1 := time.Now()
	_, err = l.b.API.Repossess(ctx, ownership.RepossessRequest{Serial: m.serial, QRSecret: secret, Order: bad})
	l.step("repossess-untrusted-order-refused", m.serial, t1, expectErr(err, ownership.ErrRefused), "403 from the MASA: not a trusted recovery authority")
	wrong := hex.EncodeToString(make([]byte, 16))
	t2 := time.Now()
	_, err = l.b.API.Repossess(ctx, ownership.RepossessRequest{Serial: m.serial, QRSecret: wrong, Order: order})
	l.step("repossess-without-possession-refused", m.serial, t2, expectErr(err, ownership.ErrRefused), "403 from the MASA: proof of possession invalid")

	t3 := time.Now()
	res, err := l.b.API.Repossess(ctx, ownership.RepossessRequest{Serial: m.serial, QRSecret: secret, Order: order})
	if !l.step("repossess-claim", m.serial, t3, err, fmt.Sprintf("the MASA holds the voucher for a %v notice", l.notice)) {
		return
	}
	// A is gone as far as the device is concerned, but its gateway still
	// reads the MASA's claims feed: it records the claim and shows it.
	t6 := time.Now()
	_, err = waitClaim(ctx, l.a, m.idHex, l.notice, record.RepossessClaimed)
	l.step("repossess-claim-seen-by-owner", m.serial, t6, err, "A's gateway read the claim from the MASA's claims feed and recorded it (repossess, claimed)")
	t4 := time.Now()
	_, err = m.dev.Join(ctx, mote.Network{CoAP: l.b.CoAP})
	if err == nil {
		err = errors.New("B enrolled the device during the notice period")
	} else if time.Now().Before(res.NoticeUntil) {
		err = nil
	}
	l.step("repossess-during-notice-refused", m.serial, t4, err, "the MASA refuses B's voucher request while the owner may object")
	select {
	case <-time.After(time.Until(res.NoticeUntil) + 100*time.Millisecond):
	case <-ctx.Done():
		return
	}
	t5 := time.Now()
	m.dev.Reset()
	_, err = m.dev.Join(ctx, mote.Network{CoAP: l.b.CoAP})
	if err == nil {
		var d ownership.DeviceDetail
		if d, err = l.b.API.GetDevice(ctx, m.idHex); err == nil && hasRecord(d, string(record.TypeRepossess)) != 1 {
			err = errors.New("B has no repossess record")
		}
	}
	l.step("repossess-enroll", m.serial, t0, err, "after the notice, reset and enrolled with B; B recorded repossess")
	var d ownership.DeviceDetail
	if d, err = waitState(ctx, l.a, m.idHex, string(store.StateRepossessed), 30*time.Second); err == nil {
		var sides []string
		if sides, err = repossessSides(d); err == nil && !slices.Equal(sides, []string{record.RepossessClaimed, record.RepossessOut}) {
			err = fmt.Errorf("A's repossess records %v, want [claimed out]", sides)
		}
		for _, c := range d.Certificates {
			if c.RevokedAt == nil {
				err = fmt.Errorf("A left LDevID %s unrevoked", c.Serial)
			}
		}
	}
	l.step("repossess-old-owner-out", m.serial, t5, err, "A saw the repossession in the claims feed: LDevID revoked, context deleted, repossess (out) recorded")
	m.resume()
}

// unauthorized reports whether a check-in got the unprotected 4.01 of a
// gateway without the context.
func unauthorized(err error) bool {
	var se *oscore.ServerError
	return errors.As(err, &se) && se.Code() == codes.Unauthorized
}

func expectErr(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	return fmt.Errorf("want %v, got %v", want, err)
}

// reset: A's operator resets the device; it is told at its next check-in,
// forgets its credentials and onboards again.
func (l *lifecycle) reset(ctx context.Context, m *lifeMote) {
	t0 := time.Now()
	_, err := l.a.API.Reset(ctx, m.idHex, ownership.ResetRequest{Reason: "tenant moved out"})
	if !l.step("reset-request", m.serial, t0, err, "A's operator asked for a factory reset (told at the next check-in)") {
		return
	}
	_, err = waitEvent(ctx, m, mote.ActionReset, time.Minute)
	if err == nil {
		var d ownership.DeviceDetail
		if d, err = l.a.API.GetDevice(ctx, m.idHex); err == nil && (hasRecord(d, string(record.TypeReset)) != 1 || hasRecord(d, string(record.TypeEnroll)) != 2) {
			err = fmt.Errorf("want one reset and two enroll records, got %d and %d", hasRecord(d, string(record.TypeReset)), hasRecord(d, string(record.TypeEnroll)))
		}
	}
	l.step("reset", m.serial, t0, err, "credentials revoked, context deleted, reset recorded; the device onboarded again")
}

// deviceReset: the device is reset by hand and onboards again; the
// gateway notices, revokes and records it.
func (l *lifecycle) deviceReset(ctx context.Context, m *lifeMote) {
	m.pause()
	defer m.resume()
	t0 := time.Now()
	n := m.dev.Network()
	m.dev.Reset()
	_, err := m.dev.Join(ctx, n)
	if err == nil {
		var d ownership.DeviceDetail
		if d, err = l.a.API.GetDevice(ctx, m.idHex); err == nil && hasRecord(d, string(record.TypeReset)) != 1 {
			err = errors.New("A has no reset record")
		}
	}
	if !l.step("device-reset", m.serial, t0, err, "reset on the device and onboarded again; A revoked the old LDevID and recorded reset (initiator device)") {
		return
	}
	l.objection(ctx, m)
}

// objection: B claims a device A still has; A objects during the notice,
// and the claim never matures.
func (l *lifecycle) objection(ctx context.Context, m *lifeMote) {
	t0 := time.Now()
	ownerB := transfer.SPKIHash(l.b.Gateway.DomainCA())
	order, err := transfer.SignOrder(rand.Reader, l.ra, &transfer.Order{Serial: m.serial, NewOwner: ownerB, IssuedAt: time.Now(), Reason: "disputed"})
	if err != nil {
		l.step("objection", m.serial, t0, err, "")
		return
	}
	res, err := l.b.API.Repossess(ctx, ownership.RepossessRequest{Serial: m.serial, QRSecret: hex.EncodeToString(l.a.MASA.LabelSecret(m.serial)), Order: order})
	if err == nil {
		// A's operator learns of the claim from its own gateway (the
		// claims feed), then objects; the objection is recorded at once.
		if _, err = waitClaim(ctx, l.a, m.idHex, l.notice, record.RepossessClaimed); err == nil {
			if _, err = l.a.API.Object(ctx, m.idHex); err == nil {
				var d ownership.DeviceDetail
				if d, err = waitClaim(ctx, l.a, m.idHex, time.Second, record.RepossessObjected); err == nil {
					var sides []string
					if sides, err = repossessSides(d); err == nil && !slices.Equal(sides, []string{record.RepossessClaimed, record.RepossessObjected}) {
						err = fmt.Errorf("A's repossess records %v, want [claimed objected]", sides)
					}
				}
			}
		}
	}
	if !l.step("objection", m.serial, t0, err, "B claimed the device; A's gateway showed the claim, its operator objected within the notice, both recorded") {
		return
	}
	select {
	case <-time.After(time.Until(res.NoticeUntil) + 100*time.Millisecond):
	case <-ctx.Done():
		return
	}
	t1 := time.Now()
	_, err = m.dev.Join(ctx, mote.Network{CoAP: l.b.CoAP})
	var se *mote.StepError
	if errors.As(err, &se) && se.Code == codes.Forbidden {
		err = nil
	} else {
		err = fmt.Errorf("B's voucher request after an objection: want 4.03, got %v", err)
	}
	l.step("objection-upheld", m.serial, t1, err, "after the notice the MASA still refuses B: the device stays with A")
}

// decommission: A decommissions the device; its check-ins and a new
// onboarding are refused, its LDevID is in the CRL; readmitted, it
// onboards again.
func (l *lifecycle) decommission(ctx context.Context, m *lifeMote) {
	m.pause()
	defer m.resume()
	_, enr, _ := m.dev.Credentials()
	t0 := time.Now()
	err := func() error {
		if _, err := l.a.API.Decommission(ctx, m.idHex, ownership.DecommissionRequest{Reason: "end of life"}); err != nil {
			return err
		}
		crlDER, err := l.a.API.CRL(ctx)
		if err != nil {
			return err
		}
		crl, err := x509.ParseRevocationList(crlDER)
		if err != nil {
			return err
		}
		if err := crl.CheckSignatureFrom(l.a.Gateway.DomainCA()); err != nil {
			return fmt.Errorf("CRL: %w", err)
		}
		if !slices.ContainsFunc(crl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
			return e.SerialNumber.Cmp(enr.LDevID.SerialNumber) == 0
		}) {
			return errors.New("the LDevID is not in the CRL")
		}
		return nil
	}()
	if !l.step("decommission", m.serial, t0, err, "credentials revoked (in the CRL the gateway serves), context deleted, recorded") {
		return
	}
	t1 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = m.dev.CheckIn(cctx, mote.Status{Firmware: "1.0.0"})
	cancel()
	if unauthorized(err) {
		err = nil
	} else {
		err = fmt.Errorf("check-in: want 4.01, got %v", err)
	}
	l.step("decommission-checkin-refused", m.serial, t1, err, "4.01: the context is gone")
	t2 := time.Now()
	n := m.dev.Network()
	_, err = m.dev.Join(ctx, n)
	var se *mote.StepError
	if errors.As(err, &se) && se.Code == codes.Forbidden {
		err = nil
	} else {
		err = fmt.Errorf("onboarding: want 4.03, got %v", err)
	}
	l.step("decommission-onboard-refused", m.serial, t2, err, "4.03 device decommissioned")
	t3 := time.Now()
	_, err = l.a.API.Readmit(ctx, m.idHex)
	if err == nil {
		m.dev.Reset()
		_, err = m.dev.Join(ctx, n)
	}
	l.step("readmit", m.serial, t3, err, "readmitted by the owner and onboarded again")
}

// delegate: A grants another domain's upstream a copy of the device's
// records for a few seconds; the delegate gets exactly that device's
// records from the "delegate" start to the "delegate" end, and read
// access to it in the API until then.
func (l *lifecycle) delegate(ctx context.Context, m *lifeMote) {
	recv := &delegateReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	t0 := time.Now()
	if err != nil {
		l.step("delegate", m.serial, t0, err, "")
		return
	}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	until := time.Now().Add(4 * time.Second).Truncate(time.Second)
	res, err := l.a.API.Delegate(ctx, m.idHex, ownership.DelegateRequest{
		Upstream: upstream.SinkConfig{Webhook: &upstream.WebhookConfig{URL: "http://" + ln.Addr().String() + "/records"}},
		Until:    until,
	})
	if !l.step("delegate", m.serial, t0, err, "records and read access granted until "+until.UTC().Format(time.RFC3339)) {
		return
	}
	t1 := time.Now()
	dc, err := api.NewClient(l.a.Admin, res.Token)
	if err == nil {
		defer dc.CloseIdleConnections()
		_, err = dc.GetDevice(ctx, m.idHex)
		if err == nil {
			other := l.motes[0].idHex
			if other == m.idHex {
				other = l.motes[1].idHex
			}
			_, e := dc.GetDevice(ctx, other)
			err = expectErr(e, ownership.ErrRefused)
		}
		if err == nil {
			list, e := dc.ListDevices(ctx, ownership.ListFilter{})
			if err = e; err == nil && (len(list) != 1 || list[0].ID != m.idHex) {
				err = fmt.Errorf("the delegate's list holds %d devices, want just this one", len(list))
			}
		}
	}
	l.step("delegate-read", m.serial, t1, err, "the delegate's token reads and lists this device, and only it")
	// Wait for the end record to arrive.
	deadline := time.Now().Add(time.Minute)
	for !recv.ended() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	t2 := time.Now()
	err = recv.check(m.idHex)
	if err == nil {
		_, e := dc.GetDevice(ctx, m.idHex)
		if e = expectErr(e, ownership.ErrUnauthorized); e != nil {
			err = fmt.Errorf("after the end: %w", e)
		}
	}
	// Check-ins go on; nothing more reaches the delegate.
	n := recv.count()
	l.waitAcked(ctx, 2, func(x *lifeMote) bool { return x == m })
	if err == nil && recv.count() != n {
		err = fmt.Errorf("%d records delivered after the delegation ended", recv.count()-n)
	}
	l.step("delegate-end", m.serial, t2, err, fmt.Sprintf("ended by itself; the delegate got %d records of this device, from delegate start to delegate end, then none", n))
	l.mu.Lock()
	l.rep.DelegatedRecords = n
	l.mu.Unlock()
}

// delegateReceiver is the delegate's webhook: it keeps the records.
type delegateReceiver struct {
	mu   sync.Mutex
	recs []*record.Record
	bad  error
}

func (d *delegateReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s, err := record.Parse(body)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.bad = err
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, x := range d.recs {
		if x.Seq == s.Record.Seq {
			w.WriteHeader(http.StatusNoContent) // a redelivery
			return
		}
	}
	d.recs = append(d.recs, s.Record)
	w.WriteHeader(http.StatusNoContent)
}

func (d *delegateReceiver) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.recs)
}

func (d *delegateReceiver) ended() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, r := range d.recs {
		if r.Type == record.TypeDelegate {
			n++
		}
	}
	return n >= 2
}

// check: only this device's records, starting and ending with "delegate".
func (d *delegateReceiver) check(idHex string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bad != nil {
		return d.bad
	}
	if len(d.recs) < 2 {
		return fmt.Errorf("the delegate got %d records", len(d.recs))
	}
	sort.Slice(d.recs, func(i, j int) bool { return d.recs[i].Seq < d.recs[j].Seq })
	for _, r := range d.recs {
		if hex.EncodeToString(r.Device[:]) != idHex {
			return fmt.Errorf("the delegate got a record of another device (%s)", r.Serial)
		}
	}
	first, last := d.recs[0], d.recs[len(d.recs)-1]
	if first.Type != record.TypeDelegate || last.Type != record.TypeDelegate {
		return fmt.Errorf("delegated records run from %s to %s, not delegate to delegate", first.Type, last.Type)
	}
	return nil
}

// gatewayMisses adds the overdue records either gateway wrote for
// transferred devices.
func (l *lifecycle) gatewayMisses(ctx context.Context) error {
	for _, m := range l.motes {
		if m.role != roleTransfer {
			continue
		}
		for _, lab := range []*Lab{l.a, l.b} {
			d, err := lab.API.GetDevice(ctx, m.idHex)
			if errors.Is(err, ownership.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			l.rep.MissedCheckins += hasRecord(d, string(record.TypeOverdue))
		}
	}
	return nil
}

// verifyRecords saves a gateway's records (and, with artifacts, copies
// them under artifacts/<name>) and verifies them as `tumbler record verify
// --chain` does.
func verifyRecords(ctx context.Context, dir, artifacts, name string, lab *Lab) (int, map[string]int, error) {
	if artifacts != "" {
		dir = filepath.Join(artifacts, name)
	}
	if err := saveRecords(ctx, dir, lab); err != nil {
		return 0, nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "records", "*.cose"))
	if err != nil {
		return 0, nil, err
	}
	sort.Strings(files)
	byType := map[string]int{}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".cose")
		if i := strings.IndexByte(base, '-'); i > 0 {
			byType[base[i+1:]]++
		}
	}
	pemData, err := os.ReadFile(filepath.Join(dir, "gateway.pub.pem"))
	if err != nil {
		return 0, nil, err
	}
	pub, err := record.LoadPublicKey(pemData)
	if err != nil {
		return 0, nil, err
	}
	return len(files), byType, record.VerifyFiles(pub, true, files, nil)
}
