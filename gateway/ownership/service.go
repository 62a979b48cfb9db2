// Package ownership makes each change of a device's owner or life
// explicit, authorised, signed and recorded: voluntary transfer (the old
// owner signs a transfer authorisation the MASA honours), repossession
// (the new owner proves possession and presents an order from a recovery
// authority), factory reset, decommission (revocation, CRL) and
// time-limited delegation of a device's records to another domain.
//
// Service is what the admin API (gateway/api) and `tumbler device` drive.
package ownership

import (
	"context"
	"time"

	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// Service is the lifecycle surface of a gateway.
type Service interface {
	// ListDevices lists devices, newest change first.
	ListDevices(ctx context.Context, f ListFilter) ([]DeviceView, error)
	// GetDevice returns one device with its certificates, delegations and
	// record chain.
	GetDevice(ctx context.Context, id string) (DeviceDetail, error)
	// Expect registers a device the owner is waiting for (registrar policy
	// "expected"), by serial, IDevID hash, QR payload, or an incoming
	// transfer authorisation.
	Expect(ctx context.Context, r ExpectRequest) (ExpectResult, error)
	// Transfer signs a transfer authorisation to a new owner, registers it
	// with the MASA and tells the device to re-bootstrap at its next
	// check-in; the gateway finishes the transfer (revocation, record)
	// once the MASA shows the new owner has the device.
	Transfer(ctx context.Context, id string, r TransferRequest) (TransferResult, error)
	// Repossess claims a device whose owner is gone: proof of possession
	// (the device label's QR secret) and an order from a recovery
	// authority the MASA trusts; the MASA enforces a notice period.
	Repossess(ctx context.Context, r RepossessRequest) (RepossessResult, error)
	// Object tells the MASA this domain, the device's owner, objects to a
	// pending repossession claim on it: the claim never matures.
	Object(ctx context.Context, id string) error
	// Reset factory-resets a device: at its next check-in (or at once with
	// Immediate) its credentials are revoked, its OSCORE context deleted,
	// a "reset" record written; the device may onboard again.
	Reset(ctx context.Context, id string, r ResetRequest) error
	// Decommission revokes a device's credentials, deletes its OSCORE
	// context and refuses its check-ins and re-onboarding until Readmit.
	Decommission(ctx context.Context, id string, r DecommissionRequest) error
	// Readmit lets a decommissioned device onboard again.
	Readmit(ctx context.Context, id string) error
	// Delegate grants another domain a copy of a device's records (to its
	// upstream) and read access to the device in the API until Until.
	Delegate(ctx context.Context, id string, r DelegateRequest) (DelegateResult, error)
	// EndDelegation ends a delegation early.
	EndDelegation(ctx context.Context, id, delegation string) error
	// Scope returns the device ids a delegation token may read, or
	// ErrUnauthorized.
	Scope(ctx context.Context, token string) ([]string, error)
	// Parked lists records an upstream refused permanently.
	Parked(ctx context.Context, sink string) ([]ParkedView, error)
	// CRL is the current certificate revocation list (DER), signed by the
	// domain CA.
	CRL(ctx context.Context) ([]byte, error)
}

// ListFilter selects devices.
type ListFilter struct {
	State   string // empty: any
	Overdue bool   // only devices that missed a check-in
	Limit   int    // 0: 1000
	// IDs, if not nil, lists only these devices (a delegate's scope);
	// unknown or malformed ids are left out.
	IDs []string
}

// DeviceView is a device in a listing. Ids are hex SHA-256 of the IDevID.
type DeviceView struct {
	ID            string     `json:"id"`
	Serial        string     `json:"serial"`
	State         string     `json:"state"`
	Class         string     `json:"class"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	LastCheckin   *time.Time `json:"last_checkin,omitempty"`
	DueAt         *time.Time `json:"due_at,omitempty"`
	Missed        int        `json:"missed"`
	Overdue       bool       `json:"overdue"`
	PendingAction string     `json:"pending_action,omitempty"` // "reset", "rebootstrap"
	// Claim is an open repossession claim against the device (the MASA's
	// claims feed): the owner may object until its notice ends.
	Claim *ClaimView `json:"claim,omitempty"`
}

// DeviceDetail is one device in full.
type DeviceDetail struct {
	DeviceView
	Certificates []CertView       `json:"certificates"`
	Delegations  []DelegationView `json:"delegations"`
	Records      []RecordView     `json:"records"`
	Claims       []ClaimView      `json:"claims"`
}

// ClaimView is a repossession claimed against the device at its MASA.
type ClaimView struct {
	OrderHash   string    `json:"order_hash"` // hex SHA-256 of the recovery authority's order
	NewOwner    string    `json:"new_owner"`  // hex SHA-256 of the claimant's domain CA SPKI
	Reason      string    `json:"reason,omitempty"`
	NoticeUntil time.Time `json:"notice_until"`
	Status      string    `json:"status"` // "claimed", "objected", "out"
}

// CertView is an LDevID issued to the device.
type CertView struct {
	Serial    string     `json:"serial"` // hex
	Op        string     `json:"op"`     // enroll, reenroll
	NotAfter  time.Time  `json:"not_after"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// RecordView is a record of the device's chain.
type RecordView struct {
	Seq  uint64    `json:"seq"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	ID   string    `json:"id"`   // hex SHA-256 of COSE
	COSE []byte    `json:"cose"` // base64 in JSON
}

// DelegationView is a delegation of a device's records.
type DelegationView struct {
	ID    string     `json:"id"`
	Sink  string     `json:"sink"`
	Until time.Time  `json:"until"`
	Ended *time.Time `json:"ended,omitempty"`
}

// ParkedView is a record a sink refused.
type ParkedView struct {
	Sink   string    `json:"sink"`
	Seq    uint64    `json:"seq"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// ExpectRequest registers an expected device: exactly one of Serial,
// IDevIDSHA256, QR or Authorization identifies it.
type ExpectRequest struct {
	Serial       string `json:"serial,omitempty"`
	IDevIDSHA256 string `json:"idevid_sha256,omitempty"` // hex
	// QR is the device label's onboarding payload (docs/qr.md).
	QR string `json:"qr,omitempty"`
	// Authorization is a transfer authorisation (COSE_Sign1) the previous
	// owner gave; the device's enrollment here is then recorded as a
	// transfer in, naming it.
	Authorization []byte `json:"authorization,omitempty"` // base64 in JSON
	Note          string `json:"note,omitempty"`
}

// ExpectResult says what was registered.
type ExpectResult struct {
	Serial string `json:"serial"`
}

// TransferRequest hands a device to a new owner, identified by its domain
// CA (PEM) or the SHA-256 of that CA's SubjectPublicKeyInfo.
type TransferRequest struct {
	NewOwnerCA         string    `json:"new_owner_ca,omitempty"`          // PEM
	NewOwnerSPKISHA256 string    `json:"new_owner_spki_sha256,omitempty"` // hex
	NotAfter           time.Time `json:"not_after,omitzero"`              // default: 7 days
	// Registrar is a hint given to the device with the instruction to
	// re-bootstrap: where the new owner's registrar is (a coaps:// URI).
	Registrar string `json:"registrar,omitempty"`
}

// TransferResult is the signed authorisation, to hand to the new owner
// (who registers it with Expect).
type TransferResult struct {
	Authorization     []byte    `json:"authorization"`      // COSE_Sign1, base64 in JSON
	AuthorizationHash string    `json:"authorization_hash"` // hex SHA-256
	NotAfter          time.Time `json:"not_after"`
}

// RepossessRequest claims a device on behalf of this gateway's domain.
type RepossessRequest struct {
	Serial string `json:"serial"`
	// QRSecret is the secret on the device's label (hex), known to the
	// MASA; the gateway sends only a proof derived from it.
	QRSecret string `json:"qr_secret"`
	// Order is a repossession order (COSE_Sign1) from a recovery
	// authority the MASA trusts.
	Order []byte `json:"order"` // base64 in JSON
}

// RepossessResult says when the device may be onboarded.
type RepossessResult struct {
	NoticeUntil time.Time `json:"notice_until"`
}

// ResetRequest resets a device.
type ResetRequest struct {
	// Immediate resets now, without waiting for the device's check-in
	// (for a device that will never check in again).
	Immediate bool   `json:"immediate,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// DecommissionRequest decommissions a device.
type DecommissionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// DelegateRequest grants a delegation.
type DelegateRequest struct {
	// Upstream is where the delegate wants the device's records.
	Upstream upstream.SinkConfig `json:"upstream"`
	Until    time.Time           `json:"until"`
}

// DelegateResult identifies the delegation and carries the delegate's
// read token for the API (shown once).
type DelegateResult struct {
	ID    string    `json:"id"`
	Token string    `json:"token"`
	Until time.Time `json:"until"`
}
