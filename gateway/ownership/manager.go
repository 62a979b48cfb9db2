package ownership

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway/checkin"
	"github.com/tumbler-iot/tumbler/gateway/journal"
	"github.com/tumbler-iot/tumbler/gateway/registrar"
	"github.com/tumbler-iot/tumbler/gateway/store"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/pki"
)

// MASA is what the manager asks of a device's MASA.
type MASA interface {
	RegisterTransfer(ctx context.Context, masaURL string, authz []byte) error
	Claim(ctx context.Context, masaURL string, claim []byte) (time.Time, error)
	Object(ctx context.Context, masaURL string, objection []byte) error
	AuditLog(ctx context.Context, masaURL string, rvr []byte) ([]registrar.AuditEvent, error)
	Claims(ctx context.Context, masaURL string, query []byte) ([]transfer.ClaimNotice, error)
}

// Config is what a Manager needs.
type Config struct {
	Store     *store.Store
	Journal   *journal.Journal
	Checkin   *checkin.Service
	Registrar *registrar.Registrar
	MASA      MASA
	// DomainCA and DomainCAKey sign the CRL.
	DomainCA    *x509.Certificate
	DomainCAKey crypto.Signer
	// MASAURL is used for devices this gateway never saw (repossession).
	MASAURL   string
	GatewayID string
	// TransferPoll is how often pending transfers are checked at the MASA
	// and its claims feed read (default 1 min).
	TransferPoll time.Duration
	// TransferValidity is the default lifetime of an authorisation
	// (default 7 days).
	TransferValidity time.Duration
	// DelegationPoll is how often delegations are ended at their time and
	// their deliverers stopped once done (default DelegationPoll; at most
	// TransferPoll).
	DelegationPoll time.Duration
	Now            func() time.Time
	Rand           io.Reader
	Log            zerolog.Logger
	SinkOptions    []upstream.SinkOption
}

// Manager implements Service for one gateway.
type Manager struct {
	cfg      Config
	domainID string   // the domain in MASA audit logs
	ownerID  [32]byte // SHA-256 of the domain CA's SPKI

	revoked sync.Map  // hex serial -> struct{}: LDevIDs refused at DTLS
	feeds   feedPolls // how reading each MASA's claims feed went

	crlMu    sync.Mutex
	crl      []byte
	crlCount int

	delMu   sync.Mutex
	running map[string]context.CancelFunc // delegation id -> its deliverer
	delWG   sync.WaitGroup
	runCtx  context.Context // Run's, while it runs: deliverers live in it
}

var _ Service = (*Manager)(nil)

// New builds a manager and loads the revoked certificates.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.TransferPoll <= 0 {
		cfg.TransferPoll = time.Minute
	}
	if cfg.DelegationPoll <= 0 {
		cfg.DelegationPoll = DelegationPoll
	}
	if cfg.TransferValidity <= 0 {
		cfg.TransferValidity = 7 * 24 * time.Hour
	}
	cfg.Log = cfg.Log.With().Str("component", "ownership").Logger()
	skid, err := pki.SubjectKeyID(cfg.DomainCA.PublicKey)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, domainID: base64.StdEncoding.EncodeToString(skid), ownerID: transfer.SPKIHash(cfg.DomainCA),
		running: map[string]context.CancelFunc{}}
	revoked, err := cfg.Store.RevokedCertificates(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range revoked {
		m.revoked.Store(r.Serial.Text(16), struct{}{})
	}
	cfg.Checkin.SetResetHook(func(ctx context.Context, dev store.Device) error {
		return m.reset(ctx, dev, record.ResetByOperator, "")
	})
	cfg.Registrar.SetAfterEnroll(m.afterEnroll)
	cfg.Registrar.SetOnReset(func(id store.DeviceID, revoked [][]byte) {
		m.revoke(revoked)
		m.forget(context.Background(), id)
	})
	return m, nil
}

// VerifyPeer refuses a DTLS client presenting an LDevID this domain
// revoked (the DTLS server's revocation check).
func (m *Manager) VerifyPeer(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return nil
	}
	leaf := chain[0]
	if string(leaf.AuthorityKeyId) != string(m.cfg.DomainCA.SubjectKeyId) {
		return nil
	}
	if _, ok := m.revoked.Load(leaf.SerialNumber.Text(16)); ok {
		return fmt.Errorf("certificate %s revoked", leaf.SerialNumber.Text(16))
	}
	return nil
}

func parseID(id string) (store.DeviceID, error) {
	var d store.DeviceID
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 32 {
		return d, fmt.Errorf("%w: id: want 64 hex digits", ErrInvalid)
	}
	copy(d[:], b)
	return d, nil
}

func (m *Manager) device(ctx context.Context, id string) (store.Device, error) {
	d, err := parseID(id)
	if err != nil {
		return store.Device{}, err
	}
	dev, err := m.cfg.Store.Device(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return dev, fmt.Errorf("%w: device %s", ErrNotFound, id)
	}
	return dev, err
}

func enrolled(s store.State) bool { return s == store.StateEnrolled || s == store.StateActive }

// ListDevices implements Service.
func (m *Manager) ListDevices(ctx context.Context, f ListFilter) ([]DeviceView, error) {
	var devs []store.Device
	if f.IDs != nil {
		for _, id := range f.IDs {
			d, err := m.device(ctx, id)
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if f.State == "" || string(d.State) == f.State {
				devs = append(devs, d)
			}
		}
	} else {
		var err error
		devs, err = m.cfg.Store.Devices(ctx, store.DeviceFilter{State: store.State(f.State), Limit: f.Limit})
		if err != nil {
			return nil, err
		}
	}
	claims, err := m.cfg.Store.Claims(ctx, nil)
	if err != nil {
		return nil, err
	}
	open := map[store.DeviceID]*ClaimView{}
	for _, c := range claims {
		if c.Status == record.RepossessClaimed {
			open[c.Device] = claimView(c)
		}
	}
	out := make([]DeviceView, 0, len(devs))
	for _, d := range devs {
		v := view(d, m.cfg.Now())
		v.Claim = open[d.ID]
		if f.Overdue && !v.Overdue {
			continue
		}
		out = append(out, v)
		if f.IDs != nil && f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func view(d store.Device, now time.Time) DeviceView {
	v := DeviceView{ID: hex.EncodeToString(d.ID[:]), Serial: d.Serial, State: string(d.State), Class: d.Class,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), Missed: d.Missed, PendingAction: d.Pending,
		Overdue: d.Missed > 0 || (!d.OverdueAt.IsZero() && !now.Before(d.OverdueAt))}
	if !d.LastCheckin.IsZero() {
		t := d.LastCheckin.UTC()
		v.LastCheckin = &t
	}
	if !d.DueAt.IsZero() {
		t := d.DueAt.UTC()
		v.DueAt = &t
	}
	return v
}

func claimView(c store.Claim) *ClaimView {
	return &ClaimView{OrderHash: hex.EncodeToString(c.OrderHash[:]), NewOwner: hex.EncodeToString(c.NewOwner[:]),
		Reason: c.Reason, NoticeUntil: c.NoticeUntil.UTC(), Status: c.Status}
}

// GetDevice implements Service.
func (m *Manager) GetDevice(ctx context.Context, id string) (DeviceDetail, error) {
	dev, err := m.device(ctx, id)
	if err != nil {
		return DeviceDetail{}, err
	}
	out := DeviceDetail{DeviceView: view(dev, m.cfg.Now()), Certificates: []CertView{}, Delegations: []DelegationView{}, Records: []RecordView{}, Claims: []ClaimView{}}
	claims, err := m.cfg.Store.Claims(ctx, &dev.ID)
	if err != nil {
		return out, err
	}
	for _, c := range claims {
		out.Claims = append(out.Claims, *claimView(c))
		if c.Status == record.RepossessClaimed {
			out.Claim = claimView(c)
		}
	}
	certs, err := m.cfg.Store.Certificates(ctx, dev.ID)
	if err != nil {
		return out, err
	}
	for _, c := range certs {
		cv := CertView{Serial: c.Cert.SerialNumber.Text(16), Op: string(c.Op), NotAfter: c.Cert.NotAfter.UTC(), IssuedAt: c.IssuedAt.UTC()}
		if !c.RevokedAt.IsZero() {
			t := c.RevokedAt.UTC()
			cv.RevokedAt = &t
		}
		out.Certificates = append(out.Certificates, cv)
	}
	dels, err := m.cfg.Store.Delegations(ctx, &dev.ID, false)
	if err != nil {
		return out, err
	}
	for _, d := range dels {
		dv := DelegationView{ID: d.ID, Sink: d.Sink, Until: d.Until.UTC()}
		if !d.EndedAt.IsZero() {
			t := d.EndedAt.UTC()
			dv.Ended = &t
		}
		out.Delegations = append(out.Delegations, dv)
	}
	recs, err := m.cfg.Store.Records(ctx, store.RecordFilter{Device: &dev.ID, Limit: 10000})
	if err != nil {
		return out, err
	}
	for _, r := range recs {
		out.Records = append(out.Records, RecordView{Seq: r.Seq, Type: r.Type, Time: r.Time.UTC(), ID: hex.EncodeToString(r.ID[:]), COSE: r.COSE})
	}
	return out, nil
}

// Expect implements Service.
func (m *Manager) Expect(ctx context.Context, r ExpectRequest) (ExpectResult, error) {
	n := 0
	for _, set := range []bool{r.Serial != "", r.IDevIDSHA256 != "", r.QR != "", len(r.Authorization) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return ExpectResult{}, fmt.Errorf("%w: give exactly one of serial, idevid_sha256, qr, authorization", ErrInvalid)
	}
	e := store.Expected{Serial: r.Serial, Note: r.Note}
	var authz []byte
	switch {
	case r.IDevIDSHA256 != "":
		h, err := hex.DecodeString(r.IDevIDSHA256)
		if err != nil || len(h) != 32 {
			return ExpectResult{}, fmt.Errorf("%w: idevid_sha256: want 64 hex digits", ErrInvalid)
		}
		e.IDevIDSHA256 = h
	case r.QR != "":
		serial, _, err := transfer.ParseLabel(r.QR)
		if err != nil {
			return ExpectResult{}, fmt.Errorf("%w: qr: %v", ErrInvalid, err)
		}
		e.Serial = serial
	case len(r.Authorization) > 0:
		a, err := transfer.ParseAuthorization(r.Authorization)
		if err != nil {
			return ExpectResult{}, fmt.Errorf("%w: authorization: %v", ErrInvalid, err)
		}
		if _, _, err := transfer.Signer(a.Msg); err != nil {
			return ExpectResult{}, fmt.Errorf("%w: authorization: %v", ErrInvalid, err)
		}
		if a.NewOwner != m.ownerID {
			return ExpectResult{}, fmt.Errorf("%w: authorization: it hands the device to another domain", ErrInvalid)
		}
		if !m.cfg.Now().Before(a.NotAfter) {
			return ExpectResult{}, fmt.Errorf("%w: authorization: expired %s", ErrInvalid, a.NotAfter.Format(time.RFC3339))
		}
		e.Serial, authz = a.Serial, r.Authorization
	}
	err := m.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		if authz != nil {
			return tx.AddExpectedTransfer(e, authz, nil, time.Time{})
		}
		return tx.AddExpected(e)
	})
	if err != nil {
		return ExpectResult{}, err
	}
	m.cfg.Log.Info().Str("serial", e.Serial).Bool("transfer", authz != nil).Msg("device expected")
	return ExpectResult{Serial: e.Serial}, nil
}

// masaError maps a MASA failure.
func masaError(err error) error {
	var me *registrar.MASAError
	if errors.As(err, &me) {
		if me.Status >= 400 && me.Status < 500 {
			return fmt.Errorf("%w: MASA: %s", ErrRefused, me.Reason)
		}
	}
	if errors.Is(err, registrar.ErrMASAUnavailable) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// Transfer implements Service.
func (m *Manager) Transfer(ctx context.Context, id string, r TransferRequest) (TransferResult, error) {
	dev, err := m.device(ctx, id)
	if err != nil {
		return TransferResult{}, err
	}
	if !enrolled(dev.State) {
		return TransferResult{}, fmt.Errorf("%w: device is %s", ErrConflict, dev.State)
	}
	if dev.Pending == store.ActionRebootstrap {
		return TransferResult{}, fmt.Errorf("%w: a transfer is already pending", ErrConflict)
	}
	var newOwner [32]byte
	switch {
	case r.NewOwnerCA != "" && r.NewOwnerSPKISHA256 != "":
		return TransferResult{}, fmt.Errorf("%w: give new_owner_ca or new_owner_spki_sha256, not both", ErrInvalid)
	case r.NewOwnerCA != "":
		certs, err := pki.ParseCerts([]byte(r.NewOwnerCA))
		if err != nil {
			return TransferResult{}, fmt.Errorf("%w: new_owner_ca: %v", ErrInvalid, err)
		}
		newOwner = transfer.SPKIHash(certs[0])
	case r.NewOwnerSPKISHA256 != "":
		h, err := hex.DecodeString(r.NewOwnerSPKISHA256)
		if err != nil || len(h) != 32 {
			return TransferResult{}, fmt.Errorf("%w: new_owner_spki_sha256: want 64 hex digits", ErrInvalid)
		}
		copy(newOwner[:], h)
	default:
		return TransferResult{}, fmt.Errorf("%w: new_owner_ca or new_owner_spki_sha256 is required", ErrInvalid)
	}
	if newOwner == m.ownerID {
		return TransferResult{}, fmt.Errorf("%w: the new owner is this domain", ErrInvalid)
	}
	now := m.cfg.Now()
	notAfter := r.NotAfter
	if notAfter.IsZero() {
		notAfter = now.Add(m.cfg.TransferValidity)
	}
	if !notAfter.After(now) {
		return TransferResult{}, fmt.Errorf("%w: not_after: in the past", ErrInvalid)
	}
	idevid, err := x509.ParseCertificate(dev.IDevID)
	if err != nil {
		return TransferResult{}, err
	}
	masaURL, err := m.cfg.Registrar.MASAURLFor(idevid)
	if err != nil {
		return TransferResult{}, fmt.Errorf("%w: no MASA for this device", ErrUnavailable)
	}
	authz, err := transfer.SignAuthorization(m.cfg.Rand, m.cfg.Registrar.Key(), m.cfg.Registrar.Chain(),
		&transfer.Authorization{Device: dev.ID, Serial: dev.Serial, NewOwner: newOwner, NotAfter: notAfter, IssuedAt: now})
	if err != nil {
		return TransferResult{}, err
	}
	if err := m.cfg.MASA.RegisterTransfer(ctx, masaURL, authz); err != nil {
		return TransferResult{}, masaError(err)
	}
	err = m.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.SetPending(store.Pending{Device: dev.ID, Action: store.ActionRebootstrap, Registrar: r.Registrar,
			Authorization: authz, NewOwner: newOwner[:], NotAfter: notAfter})
	})
	if err != nil {
		return TransferResult{}, err
	}
	m.forget(ctx, dev.ID)
	hash := sha256.Sum256(authz)
	m.cfg.Log.Info().Str("serial", dev.Serial).Str("authorization", hex.EncodeToString(hash[:8])).Time("not_after", notAfter).Msg("transfer authorized; the device is told to re-bootstrap")
	return TransferResult{Authorization: authz, AuthorizationHash: hex.EncodeToString(hash[:]), NotAfter: notAfter.UTC()}, nil
}

// Repossess implements Service.
func (m *Manager) Repossess(ctx context.Context, r RepossessRequest) (RepossessResult, error) {
	switch {
	case r.Serial == "":
		return RepossessResult{}, fmt.Errorf("%w: serial: required", ErrInvalid)
	case r.QRSecret == "":
		return RepossessResult{}, fmt.Errorf("%w: qr_secret: required (proof of possession)", ErrInvalid)
	case len(r.Order) == 0:
		return RepossessResult{}, fmt.Errorf("%w: order: required (a recovery authority's order)", ErrInvalid)
	}
	secret, err := hex.DecodeString(r.QRSecret)
	if err != nil || len(secret) < 16 {
		return RepossessResult{}, fmt.Errorf("%w: qr_secret: want at least 16 bytes of hex", ErrInvalid)
	}
	o, err := transfer.ParseOrder(r.Order)
	if err != nil {
		return RepossessResult{}, fmt.Errorf("%w: order: %v", ErrInvalid, err)
	}
	if o.Serial != r.Serial || o.NewOwner != m.ownerID {
		return RepossessResult{}, fmt.Errorf("%w: order: it is for another device or domain", ErrInvalid)
	}
	if m.cfg.MASAURL == "" {
		return RepossessResult{}, fmt.Errorf("%w: no MASA URL configured (masa.url)", ErrUnavailable)
	}
	claim, err := transfer.SignClaim(m.cfg.Rand, m.cfg.Registrar.Key(), m.cfg.Registrar.Chain(),
		&transfer.Claim{Serial: r.Serial, Order: r.Order, Proof: transfer.Proof(secret, r.Serial, m.ownerID)})
	if err != nil {
		return RepossessResult{}, err
	}
	until, err := m.cfg.MASA.Claim(ctx, m.cfg.MASAURL, claim)
	if err != nil {
		return RepossessResult{}, masaError(err)
	}
	err = m.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.AddExpectedTransfer(store.Expected{Serial: r.Serial, Note: "repossession"}, nil, r.Order, until)
	})
	if err != nil {
		return RepossessResult{}, err
	}
	m.cfg.Log.Warn().Str("serial", r.Serial).Str("reason", o.Reason).Time("notice_until", until).Msg("repossession claimed")
	return RepossessResult{NoticeUntil: until.UTC()}, nil
}

// Object implements Service.
func (m *Manager) Object(ctx context.Context, id string) error {
	dev, err := m.device(ctx, id)
	if err != nil {
		return err
	}
	if !enrolled(dev.State) {
		return fmt.Errorf("%w: device is %s", ErrConflict, dev.State)
	}
	idevid, err := x509.ParseCertificate(dev.IDevID)
	if err != nil {
		return err
	}
	masaURL, err := m.cfg.Registrar.MASAURLFor(idevid)
	if err != nil {
		return fmt.Errorf("%w: no MASA for this device", ErrUnavailable)
	}
	obj, err := transfer.SignObjection(m.cfg.Rand, m.cfg.Registrar.Key(), m.cfg.Registrar.Chain(), dev.Serial, m.cfg.Now())
	if err != nil {
		return err
	}
	if err := m.cfg.MASA.Object(ctx, masaURL, obj); err != nil {
		return masaError(err)
	}
	m.cfg.Log.Warn().Str("serial", dev.Serial).Msg("objected to a repossession claim")
	// Record the objection now, from the feed, rather than at the next poll.
	if err := m.checkClaims(ctx, masaURL); err != nil {
		m.cfg.Log.Warn().Err(err).Str("serial", dev.Serial).Msg("repossession claims")
	}
	return nil
}

// afterEnroll records a transfer in or a repossession when an expected
// device with an authorisation or order enrolls.
func (m *Manager) afterEnroll(ctx context.Context, id store.DeviceID, serial string) error {
	e, err := m.cfg.Store.ExpectedFor(ctx, serial, nil)
	if errors.Is(err, store.ErrNotFound) || err == nil && e.Authorization == nil && e.Repossession == nil {
		return nil
	}
	if err != nil {
		return err
	}
	var body record.TypedBody
	switch {
	case e.Authorization != nil:
		a, err := transfer.ParseAuthorization(e.Authorization)
		if err != nil {
			return err
		}
		body = &record.TransferBody{AuthorizationHash: a.Hash, NewOwner: a.NewOwner, NotAfter: a.NotAfter}
	default:
		o, err := transfer.ParseOrder(e.Repossession)
		if err != nil {
			return err
		}
		until := e.NoticeUntil
		if until.IsZero() {
			until = m.cfg.Now()
		}
		body = &record.RepossessBody{OrderHash: o.Hash, NoticeUntil: until}
	}
	_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: id, Serial: serial}, body, func(tx *store.Tx) error {
		return tx.ConsumeExpectedTransfer(serial)
	})
	if err == nil {
		m.cfg.Log.Info().Str("serial", serial).Str("record", string(body.RecordType())).Msg("device joined from another owner")
	}
	return err
}

// Reset implements Service.
func (m *Manager) Reset(ctx context.Context, id string, r ResetRequest) error {
	dev, err := m.device(ctx, id)
	if err != nil {
		return err
	}
	if !enrolled(dev.State) {
		return fmt.Errorf("%w: device is %s", ErrConflict, dev.State)
	}
	if len(r.Reason) > 256 {
		return fmt.Errorf("%w: reason: at most 256 bytes", ErrInvalid)
	}
	if r.Immediate {
		return m.reset(ctx, dev, record.ResetByOperator, r.Reason)
	}
	err = m.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.SetPending(store.Pending{Device: dev.ID, Action: store.ActionReset, Reason: r.Reason})
	})
	if err == nil {
		m.forget(ctx, dev.ID)
		m.cfg.Log.Info().Str("serial", dev.Serial).Msg("reset pending: told at the next check-in")
	}
	return err
}

// revocable lists a device's unrevoked certificate serials.
func (m *Manager) revocable(ctx context.Context, id store.DeviceID) ([][]byte, error) {
	certs, err := m.cfg.Store.Certificates(ctx, id)
	if err != nil {
		return nil, err
	}
	out := [][]byte{}
	for _, c := range certs {
		if c.RevokedAt.IsZero() {
			out = append(out, c.Cert.SerialNumber.Bytes())
		}
	}
	return out, nil
}

// retire revokes a device's certificates, deletes its OSCORE context,
// clears its pending operation and moves it to state, in the caller's
// transaction.
func retire(tx *store.Tx, id store.DeviceID, state store.State, reason string) error {
	if _, err := tx.RevokeCertificates(id, reason); err != nil {
		return err
	}
	if err := tx.DeleteOSCOREContext(id); err != nil {
		return err
	}
	if err := tx.ClearPending(id); err != nil {
		return err
	}
	return tx.SetState(id, state)
}

// reset revokes and records: the device may onboard again.
func (m *Manager) reset(ctx context.Context, dev store.Device, initiator, reason string) error {
	serials, err := m.revocable(ctx, dev.ID)
	if err != nil {
		return err
	}
	_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial}, &record.ResetBody{Initiator: initiator, Reason: reason, Revoked: serials},
		func(tx *store.Tx) error { return retire(tx, dev.ID, store.StateReset, "reset") })
	if err != nil {
		return err
	}
	m.revoke(serials)
	m.forget(ctx, dev.ID)
	m.cfg.Log.Warn().Str("serial", dev.Serial).Str("initiator", initiator).Int("revoked", len(serials)).Msg("device reset")
	return nil
}

// Decommission implements Service.
func (m *Manager) Decommission(ctx context.Context, id string, r DecommissionRequest) error {
	dev, err := m.device(ctx, id)
	if err != nil {
		return err
	}
	if dev.State == store.StateDecommissioned {
		return fmt.Errorf("%w: already decommissioned", ErrConflict)
	}
	if len(r.Reason) > 256 {
		return fmt.Errorf("%w: reason: at most 256 bytes", ErrInvalid)
	}
	serials, err := m.revocable(ctx, dev.ID)
	if err != nil {
		return err
	}
	_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial}, &record.DecommissionBody{Reason: r.Reason, Revoked: serials},
		func(tx *store.Tx) error { return retire(tx, dev.ID, store.StateDecommissioned, "decommissioned") })
	if err != nil {
		return err
	}
	m.revoke(serials)
	m.forget(ctx, dev.ID)
	m.cfg.Log.Warn().Str("serial", dev.Serial).Int("revoked", len(serials)).Msg("device decommissioned")
	return nil
}

// Readmit implements Service.
func (m *Manager) Readmit(ctx context.Context, id string) error {
	dev, err := m.device(ctx, id)
	if err != nil {
		return err
	}
	if dev.State != store.StateDecommissioned {
		return fmt.Errorf("%w: device is %s, not decommissioned", ErrConflict, dev.State)
	}
	_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial}, &record.ResetBody{Initiator: record.ResetByReadmit, Revoked: [][]byte{}},
		func(tx *store.Tx) error { return tx.SetState(dev.ID, store.StateReset) })
	if err == nil {
		m.cfg.Log.Info().Str("serial", dev.Serial).Msg("device readmitted")
	}
	return err
}

func (m *Manager) revoke(serials [][]byte) {
	for _, s := range serials {
		m.revoked.Store(new(big.Int).SetBytes(s).Text(16), struct{}{})
	}
	m.crlMu.Lock()
	m.crl = nil
	m.crlMu.Unlock()
}

func (m *Manager) forget(_ context.Context, id store.DeviceID) { m.cfg.Checkin.Forget(id) }

// CRL implements Service: a CRL of every revoked LDevID, signed by the
// domain CA, valid for a day, rebuilt after each revocation.
func (m *Manager) CRL(ctx context.Context) ([]byte, error) {
	m.crlMu.Lock()
	defer m.crlMu.Unlock()
	revoked, err := m.cfg.Store.RevokedCertificates(ctx)
	if err != nil {
		return nil, err
	}
	if m.crl != nil && m.crlCount == len(revoked) {
		return m.crl, nil
	}
	now := m.cfg.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(now.Unix()), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}
	for _, r := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At})
	}
	crl, err := x509.CreateRevocationList(m.cfg.Rand, tmpl, m.cfg.DomainCA, m.cfg.DomainCAKey)
	if err != nil {
		return nil, err
	}
	m.crl, m.crlCount = crl, len(revoked)
	return crl, nil
}

// Parked implements Service.
func (m *Manager) Parked(ctx context.Context, sink string) ([]ParkedView, error) {
	ps, err := m.cfg.Store.ParkedRecords(ctx, sink, 0)
	if err != nil {
		return nil, err
	}
	out := make([]ParkedView, 0, len(ps))
	for _, p := range ps {
		out = append(out, ParkedView{Sink: p.Sink, Seq: p.Seq, Reason: p.Reason, At: p.At.UTC()})
	}
	return out, nil
}

// Run finishes transfers the MASA shows complete, expires authorisations,
// ends delegations at their time and runs their deliverers, until ctx
// ends.
//
// Delegations are looked at every Config.DelegationPoll (at most
// TransferPoll), so one ends at most that long after its time.
func (m *Manager) Run(ctx context.Context) error {
	m.delMu.Lock()
	m.runCtx = ctx
	m.delMu.Unlock()
	t := time.NewTicker(min(m.cfg.TransferPoll, m.cfg.DelegationPoll))
	defer t.Stop()
	defer m.stopDeliverers()
	var lastTransfers time.Time
	for {
		if time.Since(lastTransfers) >= m.cfg.TransferPoll {
			lastTransfers = time.Now()
			if err := m.checkTransfers(ctx); err != nil && ctx.Err() == nil {
				m.cfg.Log.Error().Err(err).Msg("transfers")
			}
			if err := m.checkClaims(ctx, ""); err != nil && ctx.Err() == nil {
				m.cfg.Log.Error().Err(err).Msg("repossession claims")
			}
		}
		if err := m.superviseDelegations(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Log.Error().Err(err).Msg("delegations")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// DelegationPoll is the default of Config.DelegationPoll.
const DelegationPoll = 5 * time.Second

// checkTransfers looks at each pending transfer in the MASA's audit log
// (RFC 8995 §5.8, asked with this domain's last voucher-request for the
// device): once the latest voucher went to another domain, the transfer is
// finished here — credentials revoked, OSCORE context deleted, a transfer
// "out" record.
func (m *Manager) checkTransfers(ctx context.Context) error {
	pend, err := m.cfg.Store.PendingAll(ctx, store.ActionRebootstrap)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	for _, p := range pend {
		dev, err := m.cfg.Store.Device(ctx, p.Device)
		if err != nil {
			return err
		}
		x, err := m.cfg.Store.LatestVoucher(ctx, p.Device)
		if err != nil {
			return err
		}
		events, err := m.cfg.MASA.AuditLog(ctx, x.MASAURL, x.RVR)
		if err != nil {
			m.cfg.Log.Warn().Err(err).Str("serial", dev.Serial).Msg("transfer: MASA audit log")
			continue
		}
		if len(events) > 0 && events[len(events)-1].DomainID != m.domainID {
			if err := m.finishTransfer(ctx, dev, p); err != nil {
				return err
			}
			continue
		}
		if !p.NotAfter.IsZero() && now.After(p.NotAfter) {
			err := m.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.ClearPending(p.Device) })
			if err != nil {
				return err
			}
			m.forget(ctx, p.Device)
			m.cfg.Log.Warn().Str("serial", dev.Serial).Msg("transfer authorization expired unused; the device stays")
		}
	}
	return nil
}

func (m *Manager) finishTransfer(ctx context.Context, dev store.Device, p store.Pending) error {
	a, err := transfer.ParseAuthorization(p.Authorization)
	if err != nil {
		return err
	}
	serials, err := m.revocable(ctx, dev.ID)
	if err != nil {
		return err
	}
	_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial},
		&record.TransferBody{Out: true, AuthorizationHash: a.Hash, NewOwner: a.NewOwner, NotAfter: a.NotAfter},
		func(tx *store.Tx) error { return retire(tx, dev.ID, store.StateTransferred, "transferred") })
	if err != nil {
		return err
	}
	m.revoke(serials)
	m.forget(ctx, dev.ID)
	m.cfg.Log.Info().Str("serial", dev.Serial).Msg("transfer complete: the device belongs to its new owner")
	return nil
}

// Delegate implements Service.
func (m *Manager) Delegate(ctx context.Context, id string, r DelegateRequest) (DelegateResult, error) {
	dev, err := m.device(ctx, id)
	if err != nil {
		return DelegateResult{}, err
	}
	if !enrolled(dev.State) {
		return DelegateResult{}, fmt.Errorf("%w: device is %s", ErrConflict, dev.State)
	}
	now := m.cfg.Now()
	if !r.Until.After(now) {
		return DelegateResult{}, fmt.Errorf("%w: until: must be in the future", ErrInvalid)
	}
	idb := make([]byte, 6)
	tok := make([]byte, 24)
	if _, err := io.ReadFull(m.cfg.Rand, idb); err != nil {
		return DelegateResult{}, err
	}
	if _, err := io.ReadFull(m.cfg.Rand, tok); err != nil {
		return DelegateResult{}, err
	}
	did := hex.EncodeToString(idb)
	sc := r.Upstream
	for field, tc := range map[string]*upstream.TLSConfig{"upstream.mqtt.tls": tlsOf(sc.MQTT), "upstream.webhook.tls": tlsOfHook(sc.Webhook)} {
		if tc != nil && (tc.CAFile != "" || tc.CertFile != "" || tc.KeyFile != "") {
			return DelegateResult{}, fmt.Errorf("%w: %s: a delegate sink may not name files on the gateway (ca_file, cert_file, key_file)", ErrInvalid, field)
		}
	}
	sc.Name = "delegate-" + did
	if err := upstream.ValidateSinks([]upstream.SinkConfig{sc}); err != nil {
		return DelegateResult{}, fmt.Errorf("%w: %v", ErrInvalid, strings.Replace(err.Error(), "upstream[0]", "upstream", 1))
	}
	cfgJSON, err := json.Marshal(sc)
	if err != nil {
		return DelegateResult{}, err
	}
	token := "tdl_" + hex.EncodeToString(tok)
	th := sha256.Sum256([]byte(token))
	_, err = m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial},
		&record.DelegateBody{Delegation: did, Sink: sc.Name, Until: r.Until},
		func(tx *store.Tx) error {
			return tx.AddDelegation(store.Delegation{ID: did, Device: dev.ID, Sink: sc.Name, Config: string(cfgJSON), Until: r.Until, TokenHash: th[:]})
		})
	if err != nil {
		return DelegateResult{}, err
	}
	m.cfg.Log.Info().Str("serial", dev.Serial).Str("delegation", did).Time("until", r.Until).Msg("delegation started")
	if err := m.superviseDelegations(ctx); err != nil {
		m.cfg.Log.Error().Err(err).Msg("delegations")
	}
	return DelegateResult{ID: did, Token: token, Until: r.Until.UTC()}, nil
}

func tlsOf(m *upstream.MQTTConfig) *upstream.TLSConfig {
	if m == nil {
		return nil
	}
	return &m.TLS
}

func tlsOfHook(w *upstream.WebhookConfig) *upstream.TLSConfig {
	if w == nil {
		return nil
	}
	return &w.TLS
}

// EndDelegation implements Service.
func (m *Manager) EndDelegation(ctx context.Context, id, delegation string) error {
	dev, err := m.device(ctx, id)
	if err != nil {
		return err
	}
	d, err := m.cfg.Store.Delegation(ctx, delegation)
	if errors.Is(err, store.ErrNotFound) || err == nil && d.Device != dev.ID {
		return fmt.Errorf("%w: delegation %s of this device", ErrNotFound, delegation)
	}
	if err != nil {
		return err
	}
	if !d.EndedAt.IsZero() {
		return fmt.Errorf("%w: delegation already ended", ErrConflict)
	}
	return m.endDelegation(ctx, dev, d)
}

func (m *Manager) endDelegation(ctx context.Context, dev store.Device, d store.Delegation) error {
	_, err := m.cfg.Journal.Append(ctx, journal.Device{ID: dev.ID, Serial: dev.Serial},
		&record.DelegateBody{End: true, Delegation: d.ID, Sink: d.Sink, Until: d.Until},
		func(tx *store.Tx) error {
			ok, err := tx.EndDelegation(d.ID)
			if err == nil && !ok {
				err = fmt.Errorf("%w: delegation already ended", ErrConflict)
			}
			return err
		})
	if err == nil {
		m.cfg.Log.Info().Str("serial", dev.Serial).Str("delegation", d.ID).Msg("delegation ended")
	}
	return err
}

// Scope implements Service.
func (m *Manager) Scope(ctx context.Context, token string) ([]string, error) {
	h := sha256.Sum256([]byte(token))
	dels, err := m.cfg.Store.DelegationByToken(ctx, h[:])
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	var out []string
	for _, d := range dels {
		if now.Before(d.Until) {
			out = append(out, hex.EncodeToString(d.Device[:]))
		}
	}
	if len(out) == 0 {
		return nil, ErrUnauthorized
	}
	return out, nil
}
