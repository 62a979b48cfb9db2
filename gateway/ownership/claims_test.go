package ownership

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway/checkin"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/pki"
)

// feedMASA serves a scripted claims feed per MASA URL and checks that
// queries are signed by the domain's registrar.
type feedMASA struct {
	t       *testing.T
	mu      sync.Mutex
	feeds   map[string][]transfer.ClaimNotice
	fail    map[string]error
	queries map[string]int
}

func (f *feedMASA) RegisterTransfer(context.Context, string, []byte) error { return nil }
func (f *feedMASA) Claim(context.Context, string, []byte) (time.Time, error) {
	return time.Time{}, nil
}
func (f *feedMASA) Object(context.Context, string, []byte) error { return nil }
func (f *feedMASA) AuditLog(context.Context, string, []byte) ([]registrar.AuditEvent, error) {
	return nil, nil
}
func (f *feedMASA) Claims(_ context.Context, url string, query []byte) ([]transfer.ClaimNotice, error) {
	_, msg, err := transfer.ParseClaimsQuery(query)
	if err != nil {
		f.t.Errorf("claims query: %v", err)
		return nil, err
	}
	if _, _, err := transfer.Signer(msg); err != nil {
		f.t.Errorf("claims query signer: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries[url]++
	if err := f.fail[url]; err != nil {
		return nil, err
	}
	return f.feeds[url], nil
}

func (f *feedMASA) set(url string, n ...transfer.ClaimNotice) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feeds[url] = n
}

// The previous owner records what the claims feed says, once per change,
// in order, and only for its own devices from that MASA: a claim, an
// objection, the device gone (credentials revoked, state repossessed).
// Malformed entries and entries for devices it does not hold from that
// MASA change nothing.
// masaA has a claims feed, masaB (another manufacturer's) does not.
const masaA, masaB = "https://masa-a.test", "https://masa-b.test"

func TestClaimsFeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	now := time.Now()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	caKey, _ := pki.GenerateKey(nil)
	ca, err := pki.NewCA(now, caKey, pki.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	regKey, _ := pki.GenerateKey(nil)
	regCert, err := pki.NewRegistrarCert(now, &pki.Issuer{Cert: ca, Key: caKey}, regKey.Public(), pki.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	gwKey, _ := pki.GenerateKey(nil)
	j, err := journal.New(ctx, s, gwKey)
	if err != nil {
		t.Fatal(err)
	}
	masa := &feedMASA{t: t, feeds: map[string][]transfer.ClaimNotice{}, queries: map[string]int{},
		fail: map[string]error{masaB: &registrar.MASAError{Status: 404, Reason: "not found"}}}
	reg, err := registrar.New(registrar.Config{Chain: []*x509.Certificate{regCert, ca}, Key: regKey, Manufacturers: []*x509.Certificate{ca},
		Policy: registrar.Open, MASA: unusedMASA{}, Store: s, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := checkin.New(checkin.Defaults(), s, j, func(context.Context, coap.Peer) (store.DeviceID, error) {
		return store.DeviceID{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(ctx, Config{Store: s, Journal: j, Checkin: ci, Registrar: reg, MASA: masa, DomainCA: ca, DomainCAKey: caKey})
	if err != nil {
		t.Fatal(err)
	}

	// Two devices with the same serial from two MASAs, and one more.
	mk := func(der, serial, masaURL string) store.Device {
		d := store.Device{ID: sha256.Sum256([]byte(der)), Serial: serial, IDevID: []byte(der), State: store.StateActive}
		err := s.Update(ctx, func(tx *store.Tx) error {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
			return tx.AddVoucherExchange(store.VoucherExchange{Device: d.ID, PVR: []byte("p"), RVR: []byte("r"), Voucher: []byte("v"), MASAURL: masaURL})
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	mine := mk("idevid-1", "SN-1", masaA)
	other := mk("idevid-1b", "SN-1", masaB) // same serial, another manufacturer
	mk("idevid-2", "SN-2", masaA)

	order, owner := sha256.Sum256([]byte("order")), sha256.Sum256([]byte("claimant"))
	notice := now.Add(time.Hour).Truncate(time.Second)
	entry := func(serial, status string) transfer.ClaimNotice {
		return transfer.ClaimNotice{Serial: serial, OrderHash: hex.EncodeToString(order[:]), NewOwner: hex.EncodeToString(owner[:]),
			Reason: "court order", NoticeUntil: notice, Status: status}
	}
	sides := func(d store.Device) []string {
		t.Helper()
		recs, err := s.Records(ctx, store.RecordFilter{Device: &d.ID})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			sr, err := record.Parse(r.COSE)
			if err != nil {
				t.Fatal(err)
			}
			var b record.RepossessBody
			if err := sr.Record.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if b.OrderHash != order || b.NewOwner != owner || !b.NoticeUntil.Equal(notice) {
				t.Errorf("record %+v", b)
			}
			out = append(out, b.Side)
		}
		return out
	}
	poll := func(want ...string) {
		t.Helper()
		if err := m.checkClaims(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if got := sides(mine); !slices.Equal(got, want) {
			t.Fatalf("records %v, want %v", got, want)
		}
		if got := sides(other); len(got) != 0 {
			t.Fatalf("the other MASA's device got records %v", got)
		}
	}

	// Malformed entries are ignored.
	bad := entry("SN-1", "pending")
	bad.OrderHash = "zz"
	short := entry("SN-1", "pending")
	short.NewOwner = "abcd"
	masa.set(masaA, bad, short, entry("SN-1", "granted"), entry("SN-404", "pending"))
	poll()

	masa.set(masaA, entry("SN-1", "pending"))
	poll(record.RepossessClaimed)
	poll(record.RepossessClaimed) // the same feed again: nothing new
	list, err := m.ListDevices(ctx, ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range list {
		if (v.Claim != nil) != (v.ID == hex.EncodeToString(mine.ID[:])) {
			t.Errorf("device %s claim %+v", v.Serial, v.Claim)
		}
	}

	masa.set(masaA, entry("SN-1", "objected"))
	poll(record.RepossessClaimed, record.RepossessObjected)
	masa.set(masaA, entry("SN-1", "pending")) // a claim never goes back
	poll(record.RepossessClaimed, record.RepossessObjected)

	masa.set(masaA, entry("SN-1", "completed"))
	poll(record.RepossessClaimed, record.RepossessObjected, record.RepossessOut)
	d, err := m.GetDevice(ctx, hex.EncodeToString(mine.ID[:]))
	if err != nil {
		t.Fatal(err)
	}
	if d.State != string(store.StateRepossessed) || d.Claim != nil || len(d.Claims) != 1 || d.Claims[0].Status != record.RepossessOut {
		t.Fatalf("after the repossession: state %s, claim %+v, claims %+v", d.State, d.Claim, d.Claims)
	}
	if o, err := s.Device(ctx, other.ID); err != nil || o.State != store.StateActive {
		t.Fatalf("the other MASA's device: %v %v", o.State, err)
	}
	// Six polls read masaA's feed each time; masaB, which has none,
	// was asked once and is left alone for feedRetry.
	if masa.queries[masaA] != 6 || masa.queries[masaB] != 1 {
		t.Fatalf("queries %v, want masa-a 6 and masa-b 1", masa.queries)
	}
}

// unusedMASA fails every voucher request: these tests never onboard.
type unusedMASA struct{}

func (unusedMASA) RequestVoucher(context.Context, string, []byte) ([]byte, error) {
	return nil, registrar.ErrMASAUnavailable
}
