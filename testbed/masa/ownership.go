package masa

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/pki"
)

// Paths of Tumbler's ownership extension to the MASA API. BRSKI has no
// standard for them; they take COSE documents (cose/transfer) over the
// same client-authenticated TLS as voucher requests.
const (
	PathTransfer  = "/.well-known/tumbler/transfer"
	PathRepossess = "/.well-known/tumbler/repossess"
	PathObject    = "/.well-known/tumbler/object"
	PathClaims    = "/.well-known/tumbler/claims"
)

// DefaultNotice is how long a repossession claim waits for an objection.
const DefaultNotice = 72 * time.Hour

var (
	// ErrAuthorization: a transfer authorisation is not valid (signer not
	// the current owner, expired, for another device, already used).
	ErrAuthorization = errors.New("transfer authorization not valid")
	// ErrClaim: a repossession claim lacks a valid order or proof.
	ErrClaim = errors.New("repossession claim not valid")
)

// ownEvent is a line of the ownership log.
type ownEvent struct {
	Kind        string    `json:"kind"` // transfer, transfer-used, claim, objection, claim-used
	Serial      string    `json:"serial"`
	Hash        string    `json:"hash,omitempty"`      // authorisation or order hash, hex
	NewOwner    string    `json:"new_owner,omitempty"` // SHA-256 of the new owner's domain CA SPKI, hex
	Device      string    `json:"device,omitempty"`    // transfers: the device id (SHA-256 of its IDevID), hex
	NotAfter    time.Time `json:"not_after,omitzero"`
	NoticeUntil time.Time `json:"notice_until,omitzero"`
	Owner       string    `json:"owner,omitempty"`  // claims: the device's owner when claimed (domain id)
	Reason      string    `json:"reason,omitempty"` // claims: the order's reason
	At          time.Time `json:"at"`
}

// grant is an authorisation or a claim that lets a domain take a device
// from its current owner.
type grant struct {
	hash        string
	newOwner    string
	device      string    // authorisations: the device id they name
	notAfter    time.Time // authorisations
	noticeUntil time.Time // claims
	owner       string    // claims: the owner it was made against
	reason      string    // claims: the order's reason
	objected    bool
	used        bool
}

// ownership holds transfer authorisations and repossession claims, kept in
// memory and in an append-only JSON-lines file (fsynced before answering).
type ownership struct {
	mu        sync.Mutex
	f         *os.File
	transfers map[string][]*grant
	claims    map[string]*grant
}

func openOwnership(path string) (*ownership, error) {
	o := &ownership{transfers: map[string][]*grant{}, claims: map[string]*grant{}}
	if path == "" {
		return o, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("masa: ownership log: %w", err)
	}
	r := bufio.NewReader(f)
	var off int64
	for {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(b) > 0 {
				f.Truncate(off) // torn last line: never acknowledged
			}
			break
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		var e ownEvent
		if err := json.Unmarshal(b, &e); err != nil {
			f.Close()
			return nil, fmt.Errorf("masa: ownership log %s: %w", path, err)
		}
		o.apply(e)
		off += int64(len(b))
	}
	o.f = f
	return o, nil
}

func (o *ownership) apply(e ownEvent) {
	switch e.Kind {
	case "transfer":
		o.transfers[e.Serial] = append(o.transfers[e.Serial], &grant{hash: e.Hash, newOwner: e.NewOwner, device: e.Device, notAfter: e.NotAfter})
	case "transfer-used":
		for _, g := range o.transfers[e.Serial] {
			if g.hash == e.Hash {
				g.used = true
			}
		}
	case "claim":
		o.claims[e.Serial] = &grant{hash: e.Hash, newOwner: e.NewOwner, noticeUntil: e.NoticeUntil, owner: e.Owner, reason: e.Reason}
	case "objection":
		if g := o.claims[e.Serial]; g != nil {
			g.objected = true
		}
	case "claim-used":
		if g := o.claims[e.Serial]; g != nil && g.hash == e.Hash {
			g.used = true
		}
	}
}

// record applies e durably. The caller holds o.mu.
func (o *ownership) record(e ownEvent) error {
	if o.f != nil {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := o.f.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("masa: ownership log: %w", err)
		}
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("masa: ownership log: %w", err)
		}
	}
	o.apply(e)
	return nil
}

func (o *ownership) close() error {
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}

// grantFor finds an unused grant for the device (serial, and device id:
// the SHA-256 of the IDevID it presented) to the domain whose CA SPKI hash
// is newOwner, valid at now: a transfer authorisation naming that device
// first, then a repossession claim whose notice period passed without
// objection.
func (o *ownership) grantFor(serial, device, newOwner string, now time.Time) (kind string, g *grant) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range o.transfers[serial] {
		if t.newOwner == newOwner && t.device == device && !t.used && now.Before(t.notAfter) {
			return "transfer", t
		}
	}
	if c := o.claims[serial]; c != nil && c.newOwner == newOwner && !c.used && !c.objected && !now.Before(c.noticeUntil) {
		return "claim", c
	}
	return "", nil
}

func (o *ownership) use(kind, serial string, g *grant, now time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.record(ownEvent{Kind: kind + "-used", Serial: serial, Hash: g.hash, At: now})
}

// LabelSecret is the secret printed (in the QR code) on the label of the
// device with this serial: derived from the manufacturer CA key, so the
// MASA and `tumbler masa idevid` agree without sharing state, and nobody
// without the key or the label can compute it.
func (m *MASA) LabelSecret(serial string) []byte {
	h := hmac.New(sha256.New, m.labelKey)
	h.Write([]byte("tumbler-label-v1"))
	h.Write([]byte(serial))
	return h.Sum(nil)[:16]
}

// Label is the device label payload (QR code) of serial.
func (m *MASA) Label(serial string) string {
	return transfer.FormatLabel(serial, m.LabelSecret(serial))
}

func labelKey(key any) ([]byte, error) {
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("masa: %w: label secrets need an ECDSA CA key", ErrConfig)
	}
	d, err := k.Bytes()
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(append([]byte("tumbler-label-key-v1"), d...))
	return s[:], nil
}

// RegisterTransfer stores a transfer authorisation signed by the device's
// current owner (RFC 8995 has no such step; Tumbler's extension).
func (m *MASA) RegisterTransfer(body []byte, clientCert *x509.Certificate) (*transfer.SignedAuthorization, error) {
	a, err := transfer.ParseAuthorization(body)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrMalformed, err)
	}
	signer, bag, err := transfer.Signer(a.Msg)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrAuthorization, err)
	}
	domainID, _, err := m.domainOf(signer, bag, clientCert)
	if err != nil {
		return nil, err
	}
	now := m.now()
	if !now.Before(a.NotAfter) {
		return nil, fmt.Errorf("masa: %w: expired %s", ErrAuthorization, a.NotAfter.Format(time.RFC3339))
	}
	owner, ok := m.audit.currentOwner(a.Serial)
	if !ok {
		return nil, fmt.Errorf("masa: %w: %s has no owner to transfer from", ErrAuthorization, a.Serial)
	}
	if owner != domainID {
		return nil, fmt.Errorf("masa: %w: signed by a domain that does not own %s", ErrAuthorization, a.Serial)
	}
	m.own.mu.Lock()
	defer m.own.mu.Unlock()
	for _, g := range m.own.transfers[a.Serial] {
		if g.hash == hex.EncodeToString(a.Hash[:]) {
			return a, nil // registered before: idempotent
		}
	}
	if err := m.own.record(ownEvent{Kind: "transfer", Serial: a.Serial, Hash: hex.EncodeToString(a.Hash[:]),
		NewOwner: hex.EncodeToString(a.NewOwner[:]), Device: hex.EncodeToString(a.Device[:]), NotAfter: a.NotAfter, At: now}); err != nil {
		return nil, err
	}
	m.log.Info().Str("serial", a.Serial).Str("authorization", hex.EncodeToString(a.Hash[:8])).Time("not_after", a.NotAfter).Msg("transfer authorized")
	return a, nil
}

// RegisterClaim stores a repossession claim: the order must come from a
// recovery authority this MASA trusts and name the claimant's domain, and
// the proof must show the claimant read the device's label. It returns
// when the notice period ends.
func (m *MASA) RegisterClaim(body []byte, clientCert *x509.Certificate) (time.Time, error) {
	c, err := transfer.ParseClaim(body)
	if err != nil {
		return time.Time{}, fmt.Errorf("masa: %w: %w", ErrMalformed, err)
	}
	signer, bag, err := transfer.Signer(c.Msg)
	if err != nil {
		return time.Time{}, fmt.Errorf("masa: %w: %w", ErrClaim, err)
	}
	_, pin, err := m.domainOf(signer, bag, clientCert)
	if err != nil {
		return time.Time{}, err
	}
	o, err := transfer.ParseOrder(c.Order)
	if err != nil {
		return time.Time{}, fmt.Errorf("masa: %w: order: %w", ErrClaim, err)
	}
	trusted := false
	for _, k := range m.authorities {
		if o.Msg.Verify(k) == nil {
			trusted = true
			break
		}
	}
	if !trusted {
		return time.Time{}, fmt.Errorf("masa: %w: order not signed by a trusted recovery authority", ErrClaim)
	}
	newOwner := transfer.SPKIHash(pin)
	if o.Serial != c.Serial || o.NewOwner != newOwner {
		return time.Time{}, fmt.Errorf("masa: %w: the order is for another device or domain", ErrClaim)
	}
	if subtle.ConstantTimeCompare(c.Proof, transfer.Proof(m.LabelSecret(c.Serial), c.Serial, newOwner)) != 1 {
		return time.Time{}, fmt.Errorf("masa: %w: proof of possession invalid", ErrClaim)
	}
	now := m.now()
	until := now.Add(m.notice)
	m.own.mu.Lock()
	defer m.own.mu.Unlock()
	if g := m.own.claims[c.Serial]; g != nil && g.hash == hex.EncodeToString(o.Hash[:]) && !g.used {
		return g.noticeUntil, nil // the same claim again
	}
	owner, _ := m.audit.currentOwner(c.Serial)
	if err := m.own.record(ownEvent{Kind: "claim", Serial: c.Serial, Hash: hex.EncodeToString(o.Hash[:]),
		NewOwner: hex.EncodeToString(newOwner[:]), NoticeUntil: until, Owner: owner, Reason: o.Reason, At: now}); err != nil {
		return time.Time{}, err
	}
	m.log.Warn().Str("serial", c.Serial).Str("reason", o.Reason).Time("notice_until", until).Msg("repossession claimed; the owner may object until the notice ends")
	return until, nil
}

// RegisterObjection records the current owner's objection to a pending
// repossession claim.
func (m *MASA) RegisterObjection(body []byte, clientCert *x509.Certificate) error {
	x, msg, err := transfer.ParseObjection(body)
	if err != nil {
		return fmt.Errorf("masa: %w: %w", ErrMalformed, err)
	}
	signer, bag, err := transfer.Signer(msg)
	if err != nil {
		return fmt.Errorf("masa: %w: %w", ErrClaim, err)
	}
	domainID, _, err := m.domainOf(signer, bag, clientCert)
	if err != nil {
		return err
	}
	if owner, ok := m.audit.currentOwner(x.Serial); !ok || owner != domainID {
		return fmt.Errorf("masa: %w: only the current owner may object", ErrOwned)
	}
	m.own.mu.Lock()
	defer m.own.mu.Unlock()
	g := m.own.claims[x.Serial]
	if g == nil || g.used {
		return fmt.Errorf("masa: %w: no pending claim for %s", ErrClaim, x.Serial)
	}
	m.log.Warn().Str("serial", x.Serial).Msg("repossession objected by the owner")
	return m.own.record(ownEvent{Kind: "objection", Serial: x.Serial, At: m.now()})
}

// Claims is the claims feed: every repossession claim made against a
// device while the querying domain owned it, with where it stands. The
// query must be signed by that domain's registrar, the TLS client; that
// binding is what keeps one domain from reading another's feed, so the
// query needs no freshness of its own.
func (m *MASA) Claims(body []byte, clientCert *x509.Certificate) ([]transfer.ClaimNotice, error) {
	_, msg, err := transfer.ParseClaimsQuery(body)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrMalformed, err)
	}
	signer, bag, err := transfer.Signer(msg)
	if err != nil {
		return nil, fmt.Errorf("masa: %w: %w", ErrRegistrar, err)
	}
	domainID, _, err := m.domainOf(signer, bag, clientCert)
	if err != nil {
		return nil, err
	}
	m.own.mu.Lock()
	defer m.own.mu.Unlock()
	out := []transfer.ClaimNotice{}
	for serial, g := range m.own.claims {
		if g.owner != domainID {
			continue
		}
		n := transfer.ClaimNotice{Serial: serial, OrderHash: g.hash, NewOwner: g.newOwner, Reason: g.reason, NoticeUntil: g.noticeUntil, Status: transfer.ClaimPending}
		switch {
		case g.used:
			n.Status = transfer.ClaimCompleted
		case g.objected:
			n.Status = transfer.ClaimObjected
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b transfer.ClaimNotice) int { return strings.Compare(a.Serial, b.Serial) })
	return out, nil
}

// domainOf checks a registrar-signed document's signer (cmcRA, chains to a
// CA in the bag, is the TLS client) and returns its domain.
func (m *MASA) domainOf(signer *x509.Certificate, bag []*x509.Certificate, clientCert *x509.Certificate) (string, *x509.Certificate, error) {
	if !pki.HasCmcRA(signer) {
		return "", nil, fmt.Errorf("masa: %w: signer lacks id-kp-cmcRA", ErrRegistrar)
	}
	if clientCert == nil || !pubEqual(clientCert.PublicKey, signer.PublicKey) {
		return "", nil, fmt.Errorf("masa: %w: TLS client certificate is not the signer", ErrRegistrar)
	}
	pin := signer
	if !isSelfSigned(signer) {
		pin = nil
		for _, c := range bag {
			if c.IsCA && signer.CheckSignatureFrom(c) == nil {
				pin = c
				break
			}
		}
		if pin == nil {
			return "", nil, fmt.Errorf("masa: %w: signer's issuer not in the x5bag", ErrRegistrar)
		}
	}
	id, err := domainID(pin)
	return id, pin, err
}
