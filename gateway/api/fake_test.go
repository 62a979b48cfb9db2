package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// Fixtures shared by the tests.
var (
	baseTime   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	deviceA    = hexSum("device-A")
	deviceB    = hexSum("device-B")
	adminToken = "admin-token-0123456789abcdef"
	otherAdmin = "second-admin-token-ABCDEFGH"
	delegToken = "delegation-token-for-device-A"
	fakeCRL    = []byte{0x30, 0x03, 0x02, 0x01, 0x01} // SEQUENCE { INTEGER 1 }: stands in for a DER CRL
)

func hexSum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// fakeService is an in-memory ownership.Service. It keeps the last
// request of each method, and returns failWith from every method but
// Scope when set (scopeErr for Scope).
type fakeService struct {
	mu       sync.Mutex
	devices  map[string]*ownership.DeviceDetail
	scopes   map[string][]string
	parked   []ownership.ParkedView
	failWith error
	scopeErr error
	calls    []string
	last     map[string]any
}

var _ ownership.Service = (*fakeService)(nil)

func newFakeService() *fakeService {
	f := &fakeService{
		devices: make(map[string]*ownership.DeviceDetail),
		scopes:  map[string][]string{delegToken: {deviceA}},
		parked: []ownership.ParkedView{
			{Sink: "broker", Seq: 7, Reason: "0x99 payload format invalid", At: baseTime},
			{Sink: "crm", Seq: 9, Reason: "HTTP 400", At: baseTime.Add(time.Minute)},
		},
		last: make(map[string]any),
	}
	checkin := baseTime.Add(-time.Hour)
	due := baseTime.Add(7 * 24 * time.Hour)
	for i, id := range []string{deviceA, deviceB} {
		f.devices[id] = &ownership.DeviceDetail{
			DeviceView: ownership.DeviceView{
				ID: id, Serial: fmt.Sprintf("SN-%04d", i+1), State: "active", Class: "default",
				CreatedAt: baseTime, UpdatedAt: baseTime, LastCheckin: &checkin, DueAt: &due,
				Overdue: i == 1, Missed: i,
			},
			Certificates: []ownership.CertView{{Serial: "0a1b", Op: "enroll", NotAfter: baseTime.AddDate(2, 0, 0), IssuedAt: baseTime}},
			Delegations:  []ownership.DelegationView{},
			Records:      []ownership.RecordView{{Seq: uint64(i + 1), Type: "enroll", Time: baseTime, ID: hexSum(id), COSE: []byte{0xd2, 0x84}}},
		}
	}
	return f
}

// begin notes a call and its request; it returns failWith.
func (f *fakeService) begin(method string, req any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.last[method] = req
	return f.failWith
}

// lastRequest is the last request of method.
func (f *fakeService) lastRequest(method string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[method]
}

// called reports whether method was called.
func (f *fakeService) called(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, method)
}

func (f *fakeService) device(id string) (*ownership.DeviceDetail, error) {
	d, ok := f.devices[id]
	if !ok {
		return nil, fmt.Errorf("device %.8s: %w", id, ownership.ErrNotFound)
	}
	return d, nil
}

func (f *fakeService) ListDevices(_ context.Context, lf ownership.ListFilter) ([]ownership.DeviceView, error) {
	if err := f.begin("ListDevices", lf); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ownership.DeviceView
	for _, id := range []string{deviceA, deviceB} {
		d, ok := f.devices[id]
		if !ok || (lf.State != "" && d.State != lf.State) || (lf.Overdue && !d.Overdue) {
			continue
		}
		if lf.IDs != nil && !slices.Contains(lf.IDs, id) {
			continue
		}
		out = append(out, d.DeviceView)
	}
	if lf.Limit > 0 && len(out) > lf.Limit {
		out = out[:lf.Limit]
	}
	return out, nil
}

func (f *fakeService) GetDevice(_ context.Context, id string) (ownership.DeviceDetail, error) {
	if err := f.begin("GetDevice", id); err != nil {
		return ownership.DeviceDetail{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return ownership.DeviceDetail{}, err
	}
	return *d, nil
}

func (f *fakeService) Expect(_ context.Context, r ownership.ExpectRequest) (ownership.ExpectResult, error) {
	if err := f.begin("Expect", r); err != nil {
		return ownership.ExpectResult{}, err
	}
	n := 0
	for _, set := range []bool{r.Serial != "", r.IDevIDSHA256 != "", r.QR != "", len(r.Authorization) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return ownership.ExpectResult{}, fmt.Errorf("%w: exactly one of serial, idevid_sha256, qr and authorization", ownership.ErrInvalid)
	}
	serial := r.Serial
	if serial == "" {
		serial = "SN-EXPECTED"
	}
	return ownership.ExpectResult{Serial: serial}, nil
}

func (f *fakeService) Transfer(_ context.Context, id string, r ownership.TransferRequest) (ownership.TransferResult, error) {
	if err := f.begin("Transfer", r); err != nil {
		return ownership.TransferResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return ownership.TransferResult{}, err
	}
	if (r.NewOwnerCA == "") == (r.NewOwnerSPKISHA256 == "") {
		return ownership.TransferResult{}, fmt.Errorf("%w: new_owner_ca or new_owner_spki_sha256, not both", ownership.ErrInvalid)
	}
	notAfter := r.NotAfter
	if notAfter.IsZero() {
		notAfter = baseTime.Add(7 * 24 * time.Hour)
	}
	d.PendingAction = "rebootstrap"
	auth := []byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26}
	return ownership.TransferResult{Authorization: auth, AuthorizationHash: hexSum(string(auth)), NotAfter: notAfter}, nil
}

func (f *fakeService) Repossess(_ context.Context, r ownership.RepossessRequest) (ownership.RepossessResult, error) {
	if err := f.begin("Repossess", r); err != nil {
		return ownership.RepossessResult{}, err
	}
	if r.Serial == "" || len(r.Order) == 0 {
		return ownership.RepossessResult{}, fmt.Errorf("%w: serial and order are required", ownership.ErrInvalid)
	}
	return ownership.RepossessResult{NoticeUntil: baseTime.Add(30 * 24 * time.Hour)}, nil
}

func (f *fakeService) Reset(_ context.Context, id string, r ownership.ResetRequest) error {
	if err := f.begin("Reset", r); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return err
	}
	if r.Immediate {
		d.State = "reset"
	} else {
		d.PendingAction = "reset"
	}
	return nil
}

func (f *fakeService) Decommission(_ context.Context, id string, r ownership.DecommissionRequest) error {
	if err := f.begin("Decommission", r); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return err
	}
	if d.State == "decommissioned" {
		return fmt.Errorf("%w: already decommissioned", ownership.ErrConflict)
	}
	d.State = "decommissioned"
	return nil
}

func (f *fakeService) Object(_ context.Context, id string) error {
	if err := f.begin("Object", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.device(id)
	return err
}

func (f *fakeService) Readmit(_ context.Context, id string) error {
	if err := f.begin("Readmit", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return err
	}
	if d.State != "decommissioned" {
		return fmt.Errorf("%w: %s is %s, not decommissioned", ownership.ErrConflict, d.Serial, d.State)
	}
	d.State = "readmitted"
	return nil
}

func (f *fakeService) Delegate(_ context.Context, id string, r ownership.DelegateRequest) (ownership.DelegateResult, error) {
	if err := f.begin("Delegate", r); err != nil {
		return ownership.DelegateResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return ownership.DelegateResult{}, err
	}
	if err := r.Upstream.Validate(); err != nil {
		return ownership.DelegateResult{}, fmt.Errorf("%w: upstream: %v", ownership.ErrInvalid, err)
	}
	did := fmt.Sprintf("dlg-%d", len(d.Delegations)+1)
	token := "token-of-" + did + "-0123456789"
	d.Delegations = append(d.Delegations, ownership.DelegationView{ID: did, Sink: r.Upstream.Name, Until: r.Until})
	f.scopes[token] = []string{id}
	return ownership.DelegateResult{ID: did, Token: token, Until: r.Until}, nil
}

func (f *fakeService) EndDelegation(_ context.Context, id, delegation string) error {
	if err := f.begin("EndDelegation", delegation); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.device(id)
	if err != nil {
		return err
	}
	for i := range d.Delegations {
		if d.Delegations[i].ID == delegation {
			ended := baseTime
			d.Delegations[i].Ended = &ended
			return nil
		}
	}
	return fmt.Errorf("delegation %q: %w", delegation, ownership.ErrNotFound)
}

func (f *fakeService) Scope(_ context.Context, token string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Scope")
	if f.scopeErr != nil {
		return nil, f.scopeErr
	}
	ids, ok := f.scopes[token]
	if !ok {
		return nil, fmt.Errorf("token: %w", ownership.ErrUnauthorized)
	}
	return ids, nil
}

func (f *fakeService) Parked(_ context.Context, sink string) ([]ownership.ParkedView, error) {
	if err := f.begin("Parked", sink); err != nil {
		return nil, err
	}
	var out []ownership.ParkedView
	for _, p := range f.parked {
		if sink == "" || p.Sink == sink {
			out = append(out, p)
		}
	}
	if sink != "" && out == nil {
		return nil, fmt.Errorf("sink %q: %w", sink, ownership.ErrNotFound)
	}
	return out, nil
}

func (f *fakeService) CRL(context.Context) ([]byte, error) {
	if err := f.begin("CRL", nil); err != nil {
		return nil, err
	}
	return fakeCRL, nil
}
