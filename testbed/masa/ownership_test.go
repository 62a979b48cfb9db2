package masa

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/pki"
)

func (d domain) certs() []*x509.Certificate { return []*x509.Certificate{d.reg, d.ca} }

// authz is what d's registrar signs to hand p to newOwner.
func authz(t *testing.T, d domain, p pledge, newOwner domain, notAfter time.Time, mutate func(*transfer.Authorization)) []byte {
	t.Helper()
	a := &transfer.Authorization{Device: pki.DeviceID(p.cert), Serial: p.cert.Subject.SerialNumber,
		NewOwner: transfer.SPKIHash(newOwner.ca), NotAfter: notAfter, IssuedAt: time.Now()}
	if mutate != nil {
		mutate(a)
	}
	b, err := transfer.SignAuthorization(rand.Reader, d.key, d.certs(), a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// owned gives p to d.
func owned(t *testing.T, m *MASA, d domain, p pledge) {
	t.Helper()
	if _, err := m.RequestVoucher(context.Background(), rvr(t, d, p, nil, nil), d.reg); err != nil {
		t.Fatal(err)
	}
}

func TestTransferAuthorization(t *testing.T) {
	ctx := context.Background()
	m := newMASA(t, "")
	a, b, c := newDomain(t, "A", true), newDomain(t, "B", true), newDomain(t, "C", true)
	p, q := newPledge(t, m, "SN-1"), newPledge(t, m, "SN-2")
	owned(t, m, a, p)
	owned(t, m, a, q)
	week := time.Now().Add(7 * 24 * time.Hour)

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   []byte
			client *x509.Certificate
			err    error
		}{
			{"garbage", []byte("not cose"), a.reg, ErrMalformed},
			{"signed by a domain that does not own the device", authz(t, c, p, b, week, nil), c.reg, ErrAuthorization},
			{"expired", authz(t, a, p, b, time.Now().Add(-time.Minute), nil), a.reg, ErrAuthorization},
			{"TLS client is not the signer", authz(t, a, p, b, week, nil), c.reg, ErrRegistrar},
			{"device never claimed", authz(t, a, p, b, week, func(x *transfer.Authorization) { x.Serial = "SN-9" }), a.reg, ErrAuthorization},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := m.RegisterTransfer(tc.body, tc.client); !errors.Is(err, tc.err) {
					t.Errorf("err %v, want %v", err, tc.err)
				}
			})
		}
		// Nothing registered: B still gets no voucher.
		if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
			t.Errorf("B after refusals: %v, want ErrOwned", err)
		}
	})

	t.Run("for another device", func(t *testing.T) {
		// An authorisation for SN-2 that names SN-1's device id grants
		// neither device.
		x := authz(t, a, q, b, week, func(x *transfer.Authorization) { x.Device = pki.DeviceID(p.cert) })
		if _, err := m.RegisterTransfer(x, a.reg); err != nil {
			t.Fatal(err)
		}
		if _, err := m.RequestVoucher(ctx, rvr(t, b, q, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
			t.Errorf("SN-2 with an authorisation naming another device: %v, want ErrOwned", err)
		}
		if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
			t.Errorf("SN-1 with an authorisation for SN-2: %v, want ErrOwned", err)
		}
	})

	t.Run("to another domain", func(t *testing.T) {
		if _, err := m.RegisterTransfer(authz(t, a, p, c, week, nil), a.reg); err != nil {
			t.Fatal(err)
		}
		if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
			t.Errorf("B with an authorisation for C: %v, want ErrOwned", err)
		}
	})

	t.Run("honoured once, then replayed", func(t *testing.T) {
		x := authz(t, a, p, b, week, nil)
		if _, err := m.RegisterTransfer(x, a.reg); err != nil {
			t.Fatal(err)
		}
		if _, err := m.RegisterTransfer(x, a.reg); err != nil {
			t.Errorf("registering the same authorisation again: %v (want idempotent)", err)
		}
		if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); err != nil {
			t.Fatalf("B with A's authorisation: %v", err)
		}
		if ev := m.Audit("SN-1"); ev[len(ev)-1].DomainID == ev[0].DomainID {
			t.Error("audit log does not show the new owner")
		}
		// A no longer owns SN-1: it can neither get a voucher nor
		// authorise again, and its old authorisation is spent.
		if _, err := m.RequestVoucher(ctx, rvr(t, a, p, nil, nil), a.reg); !errors.Is(err, ErrOwned) {
			t.Errorf("old owner: %v, want ErrOwned", err)
		}
		if _, err := m.RegisterTransfer(x, a.reg); !errors.Is(err, ErrAuthorization) {
			t.Errorf("old owner replays its authorisation: %v, want ErrAuthorization", err)
		}
		// B hands it back to A; then B cannot reuse A's spent authorisation.
		if _, err := m.RegisterTransfer(authz(t, b, p, a, week, nil), b.reg); err != nil {
			t.Fatal(err)
		}
		if _, err := m.RequestVoucher(ctx, rvr(t, a, p, nil, nil), a.reg); err != nil {
			t.Fatalf("back to A: %v", err)
		}
		if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
			t.Errorf("B replays the spent authorisation: %v, want ErrOwned", err)
		}
	})
}

func TestRepossessionClaim(t *testing.T) {
	ctx := context.Background()
	authority, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rogue, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	key, _ := pki.GenerateKey(nil)
	ca, err := pki.NewCA(now, key, pki.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	open := func() *MASA {
		m, err := New(ca, key, "masa.test", FirstClaim, filepath.Join(dir, "audit.jsonl"), WithClock(clock),
			WithRecoveryAuthorities(authority.Public()), WithNotice(time.Hour), WithOwnershipLog(filepath.Join(dir, "own.jsonl")))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open()
	a, b := newDomain(t, "A", true), newDomain(t, "B", true)
	p := newPledge(t, m, "SN-R")
	owned(t, m, a, p)
	ownerB := transfer.SPKIHash(b.ca)
	order := func(k *ecdsa.PrivateKey, serial string, owner [32]byte) []byte {
		o, err := transfer.SignOrder(rand.Reader, k, &transfer.Order{Serial: serial, NewOwner: owner, IssuedAt: now, Reason: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	claim := func(d domain, ord []byte, proof []byte) []byte {
		c, err := transfer.SignClaim(rand.Reader, d.key, d.certs(), &transfer.Claim{Serial: "SN-R", Order: ord, Proof: proof})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := transfer.Proof(m.LabelSecret("SN-R"), "SN-R", ownerB)
	for _, tc := range []struct {
		name string
		body []byte
		err  error
	}{
		{"garbage", []byte{0xd2}, ErrMalformed},
		{"order of an untrusted authority", claim(b, order(rogue, "SN-R", ownerB), good), ErrClaim},
		{"order for another device", claim(b, order(authority, "SN-X", ownerB), good), ErrClaim},
		{"order for another domain", claim(b, order(authority, "SN-R", transfer.SPKIHash(a.ca)), good), ErrClaim},
		{"proof of possession of nothing", claim(b, order(authority, "SN-R", ownerB), make([]byte, 32)), ErrClaim},
		{"wrong label secret", claim(b, order(authority, "SN-R", ownerB), transfer.Proof(make([]byte, 16), "SN-R", ownerB)), ErrClaim},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.RegisterClaim(tc.body, b.reg); !errors.Is(err, tc.err) {
				t.Errorf("err %v, want %v", err, tc.err)
			}
		})
	}
	until, err := m.RegisterClaim(claim(b, order(authority, "SN-R", ownerB), good), b.reg)
	if err != nil {
		t.Fatal(err)
	}
	if !until.Equal(now.Add(time.Hour)) {
		t.Errorf("notice until %v", until)
	}
	if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
		t.Errorf("during the notice: %v, want ErrOwned", err)
	}
	// Only the owner may object; the claim survives a restart.
	if err := m.RegisterObjection(mustObjection(t, b, "SN-R", now), b.reg); !errors.Is(err, ErrOwned) {
		t.Errorf("objection by the claimant: %v, want ErrOwned", err)
	}
	m.Close()
	m = open()
	defer m.Close()
	now = now.Add(2 * time.Hour)
	if _, err := m.RequestVoucher(ctx, rvr(t, b, p, nil, nil), b.reg); err != nil {
		t.Fatalf("after the notice: %v", err)
	}

	// A second device: the owner objects in time, and the claim never
	// matures.
	q := newPledge(t, m, "SN-O")
	owned(t, m, a, q)
	goodQ := transfer.Proof(m.LabelSecret("SN-O"), "SN-O", ownerB)
	cq, err := transfer.SignClaim(rand.Reader, b.key, b.certs(), &transfer.Claim{Serial: "SN-O", Order: order(authority, "SN-O", ownerB), Proof: goodQ})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RegisterClaim(cq, b.reg); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterObjection(mustObjection(t, a, "SN-O", now), a.reg); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := m.RequestVoucher(ctx, rvr(t, b, q, nil, nil), b.reg); !errors.Is(err, ErrOwned) {
		t.Errorf("after an objection: %v, want ErrOwned", err)
	}

	// The claims feed: A, the owner both claims were made against, sees
	// both with where they stand; B, the claimant, sees none; a query not
	// signed by the TLS client, or not a query, is refused.
	feed, err := m.Claims(mustQuery(t, a, now), a.reg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"SN-O": transfer.ClaimObjected, "SN-R": transfer.ClaimCompleted}
	if len(feed) != len(want) {
		t.Fatalf("feed %+v", feed)
	}
	for _, n := range feed {
		if want[n.Serial] != n.Status || n.NewOwner != hex.EncodeToString(ownerB[:]) || n.Reason != "test" || len(n.OrderHash) != 64 {
			t.Errorf("feed entry %+v", n)
		}
	}
	if feed, err := m.Claims(mustQuery(t, b, now), b.reg); err != nil || len(feed) != 0 {
		t.Errorf("claimant's feed %+v %v", feed, err)
	}
	if _, err := m.Claims(mustQuery(t, a, now), b.reg); !errors.Is(err, ErrRegistrar) {
		t.Errorf("query by another TLS client: %v, want ErrRegistrar", err)
	}
	if _, err := m.Claims(mustObjection(t, a, "SN-O", now), a.reg); !errors.Is(err, ErrMalformed) {
		t.Errorf("objection as a query: %v, want ErrMalformed", err)
	}
}

func mustQuery(t *testing.T, d domain, now time.Time) []byte {
	t.Helper()
	q, err := transfer.SignClaimsQuery(rand.Reader, d.key, d.certs(), now)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mustObjection(t *testing.T, d domain, serial string, now time.Time) []byte {
	t.Helper()
	o, err := transfer.SignObjection(rand.Reader, d.key, d.certs(), serial, now)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
