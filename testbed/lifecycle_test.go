package testbed

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/ownership"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

// The lifecycle scenario end to end: every step succeeds, no transferred
// device misses a check-in, both domains' records verify, and the old
// owner is locked out of transferred devices (the scenario's
// old-owner-* steps).
func TestLifecycleScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("two labs and a minute of simulated life")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Scenario: ScenarioLifecycle, Motes: 8, Seed: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Lifecycle
	want := map[string]int{}
	for _, s := range l.Steps {
		if !s.OK {
			t.Errorf("step %s %s: %s", s.Step, s.Serial, s.Detail)
		}
		want[s.Step]++
	}
	for _, step := range []string{"transfer-complete", "old-owner-checkin-refused", "old-owner-dtls-refused", "old-owner-operation-refused",
		"repossess-enroll", "repossess-during-notice-refused", "reset", "device-reset", "decommission-onboard-refused",
		"decommission-checkin-refused", "readmit", "delegate-end", "objection", "objection-upheld"} {
		if want[step] == 0 {
			t.Errorf("step %s missing", step)
		}
	}
	if want["transfer-complete"] != 3 || l.Transferred != 3 {
		t.Errorf("transferred %d, want 3", l.Transferred)
	}
	if l.MissedCheckins != 0 {
		t.Errorf("missed check-ins %d", l.MissedCheckins)
	}
	if l.Verified["a"] != "ok" || l.Verified["b"] != "ok" {
		t.Errorf("verification: %v", l.Verified)
	}
	for _, typ := range []string{"transfer", "reset", "decommission", "delegate", "enroll"} {
		if l.RecordsByType["a"][typ] == 0 {
			t.Errorf("domain A has no %s record", typ)
		}
	}
	for _, typ := range []string{"transfer", "repossess", "enroll", "checkin"} {
		if l.RecordsByType["b"][typ] == 0 {
			t.Errorf("domain B has no %s record", typ)
		}
	}
	if !l.Completed {
		t.Error("report does not say completed")
	}
}

// Bad input to the lifecycle operations: each refused with the right
// error, and nothing about the device changes.
func TestLifecycleBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := StartLab(ctx, t.TempDir(), LabOptions{Domain: "Domain A", ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := StartLab(ctx, t.TempDir(), LabOptions{Domain: "Domain B", ID: "b", SharedMASA: a})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cert, key, err := a.MASA.IssueIDevID("BAD-1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := mote.New(mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: a.MASA.CA()}, mote.Config{Listen: loopbackUDP})
	if err != nil {
		t.Fatal(err)
	}
	dev := mote.NewDevice(p, nil)
	if _, err := dev.Join(ctx, mote.Network{CoAP: a.CoAP}); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	did := pki.DeviceID(cert)
	id := hex.EncodeToString(did[:])
	before, err := a.API.GetDevice(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	caB := string(pki.EncodeCerts(b.Gateway.DomainCA()))
	week := time.Now().Add(7 * 24 * time.Hour)
	// An authorisation B's registrar signs for a device it does not own,
	// one A signs that expired, and one A signs for another domain.
	bKey, bChain := registrarOf(t, b)
	aKey, aChain := registrarOf(t, a)
	byNonOwner := mustAuthz(t, bKey, bChain, did, "BAD-1", a.Gateway.DomainCA(), week)
	expired := mustAuthz(t, aKey, aChain, did, "BAD-1", b.Gateway.DomainCA(), time.Now().Add(-time.Hour))
	toOther := mustAuthz(t, aKey, aChain, did, "BAD-1", a.Gateway.DomainCA(), week)

	noToken, _ := api.NewClient(a.Admin, "")
	wrongToken, _ := api.NewClient(a.Admin, "not-the-admin-token-at-all")
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"no token", func() error { _, err := noToken.ListDevices(ctx, ownership.ListFilter{}); return err }, ownership.ErrUnauthorized},
		{"wrong token", func() error { _, err := wrongToken.Decommission(ctx, id, ownership.DecommissionRequest{}); return err }, ownership.ErrUnauthorized},
		{"unknown device", func() error {
			_, err := a.API.Reset(ctx, strings.Repeat("ab", 32), ownership.ResetRequest{})
			return err
		}, ownership.ErrNotFound},
		{"malformed device id", func() error { _, err := a.API.GetDevice(ctx, "xyz"); return err }, ownership.ErrInvalid},
		{"transfer to a malformed owner", func() error {
			_, err := a.API.Transfer(ctx, id, ownership.TransferRequest{NewOwnerSPKISHA256: "00"})
			return err
		}, ownership.ErrInvalid},
		{"transfer to itself", func() error {
			_, err := a.API.Transfer(ctx, id, ownership.TransferRequest{NewOwnerCA: string(pki.EncodeCerts(a.Gateway.DomainCA()))})
			return err
		}, ownership.ErrInvalid},
		{"transfer that expired", func() error {
			_, err := a.API.Transfer(ctx, id, ownership.TransferRequest{NewOwnerCA: caB, NotAfter: time.Now().Add(-time.Minute)})
			return err
		}, ownership.ErrInvalid},
		{"expect an expired authorisation", func() error {
			_, err := b.API.Expect(ctx, ownership.ExpectRequest{Authorization: expired})
			return err
		}, ownership.ErrInvalid},
		{"expect an authorisation for another domain", func() error {
			_, err := b.API.Expect(ctx, ownership.ExpectRequest{Authorization: toOther})
			return err
		}, ownership.ErrInvalid},
		{"expect garbage", func() error {
			_, err := b.API.Expect(ctx, ownership.ExpectRequest{Authorization: []byte{0xd2, 0x84, 0x40}})
			return err
		}, ownership.ErrInvalid},
		{"repossess without proof", func() error {
			_, err := b.API.Repossess(ctx, ownership.RepossessRequest{Serial: "BAD-1", Order: []byte{1}})
			return err
		}, ownership.ErrInvalid},
		{"delegate into the past", func() error {
			_, err := a.API.Delegate(ctx, id, ownership.DelegateRequest{Until: time.Now().Add(-time.Hour)})
			return err
		}, ownership.ErrInvalid},
		{"delegate to the gateway's own key", func() error {
			_, err := a.API.Delegate(ctx, id, ownership.DelegateRequest{Until: week, Upstream: upstreamWithKey()})
			return err
		}, ownership.ErrInvalid},
		{"readmit an active device", func() error { _, err := a.API.Readmit(ctx, id); return err }, ownership.ErrConflict},
		{"end a delegation that is not there", func() error { _, err := a.API.EndDelegation(ctx, id, "0123456789ab"); return err }, ownership.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
	// Malformed JSON names the problem.
	for _, body := range []string{`{"serial":`, `{"serial": 7}`, `{"serial":"x","colour":"red"}`, `[]`} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.Admin+"/api/devices/expected", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+adminToken(t, a))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(msg, []byte(`"error"`)) {
			t.Errorf("%s: %d %s", body, resp.StatusCode, msg)
		}
	}
	// The MASA refuses an authorisation from a domain that does not own
	// the device (the gateway never signs one: B's registrar key is used
	// directly, as a rogue operator would).
	if err := b.masaClient(t).RegisterTransfer(ctx, a.MASA.URL(), byNonOwner); !isMASARefusal(err) {
		t.Errorf("authorisation by a non-owner: %v, want a MASA refusal", err)
	}

	after, err := a.API.GetDevice(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != before.State || len(after.Records) != len(before.Records) || len(after.Certificates) != len(before.Certificates) ||
		after.PendingAction != "" || len(after.Delegations) != 0 {
		t.Errorf("device changed by refused requests: %+v -> %+v", before.DeviceView, after.DeviceView)
	}
	if _, err := dev.CheckIn(ctx, mote.Status{Firmware: "1"}); err != nil {
		t.Errorf("check-in after refused requests: %v", err)
	}
}

// registrarOf loads a lab gateway's registrar key and chain.
func registrarOf(t *testing.T, l *Lab) (crypto.Signer, []*x509.Certificate) {
	t.Helper()
	dir := filepath.Join(l.Dir, "gateway")
	chain, err := pki.LoadCerts(filepath.Join(dir, gateway.FileRegistrar))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.LoadKey(filepath.Join(dir, gateway.FileRegistrarKey))
	if err != nil {
		t.Fatal(err)
	}
	return key, chain
}

func mustAuthz(t *testing.T, key crypto.Signer, chain []*x509.Certificate, dev [32]byte, serial string, owner *x509.Certificate, notAfter time.Time) []byte {
	t.Helper()
	x, err := transfer.SignAuthorization(rand.Reader, key, chain,
		&transfer.Authorization{Device: dev, Serial: serial, NewOwner: transfer.SPKIHash(owner), NotAfter: notAfter, IssuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func upstreamWithKey() upstream.SinkConfig {
	return upstream.SinkConfig{Webhook: &upstream.WebhookConfig{URL: "http://127.0.0.1:1/x",
		TLS: upstream.TLSConfig{CertFile: gateway.FileRegistrar, KeyFile: gateway.FileRegistrarKey}}}
}

func adminToken(t *testing.T, l *Lab) string {
	t.Helper()
	cfg, err := gateway.Load(l.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Admin.Tokens[0]
}

// masaClient is an HTTPS MASA client with the lab's registrar identity.
func (l *Lab) masaClient(t *testing.T) *registrar.HTTPMASA {
	t.Helper()
	key, chain := registrarOf(t, l)
	cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	roots := x509.NewCertPool()
	roots.AddCert(l.MASA.CA())
	c := registrar.NewHTTPMASA(cert, roots, 10*time.Second)
	t.Cleanup(c.CloseIdle)
	return c
}

func isMASARefusal(err error) bool {
	var me *registrar.MASAError
	return errors.As(err, &me) && me.Status == http.StatusForbidden
}
