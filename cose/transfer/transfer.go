// Package transfer holds the signed documents by which a device changes
// owner outside a normal onboarding (DESIGN.md "Ownership"; FDO's signed
// ownership voucher entries are the model, spec/ownership.md §1):
//
//   - an Authorization: the current owner's registrar consents to hand a
//     device to the domain whose CA it names, until a time;
//   - an Order: a recovery authority the MASA trusts orders a device
//     handed to a domain without its previous owner (repossession);
//   - a Claim: the claimant's registrar presents the order to the MASA with
//     a proof that it holds the device (from the label's secret);
//   - an Objection: the current owner's registrar objects to a claim during
//     the MASA's notice period;
//   - a ClaimsQuery: an owner's registrar asks the MASA which claims were
//     made against its devices (the claims feed).
//
// Each is a COSE_Sign1 (ES256) over strict deterministic CBOR with integer
// keys. Registrar-signed documents carry the registrar's certificate chain
// in an unprotected x5bag, as registrar voucher-requests do, so the MASA
// can tell which domain signed; the order carries the authority's key id.
package transfer

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tumbler-iot/tumbler/cose"
)

var (
	// ErrMalformed: not a well-formed document of the expected kind.
	ErrMalformed = errors.New("transfer: malformed document")
	// ErrExpired: the authorisation's not-after has passed.
	ErrExpired = errors.New("transfer: authorization expired")
	// ErrSigner: no certificate in the x5bag verifies the signature.
	ErrSigner = errors.New("transfer: signer not found")
	// ErrLabel: not a device label payload.
	ErrLabel = errors.New("transfer: malformed device label")
)

// Authorization is a transfer authorisation.
//
//	authorization = {
//	  1 => bstr .size 32,   ; device id (SHA-256 of the IDevID)
//	  2 => tstr,            ; serial-number
//	  3 => bstr .size 32,   ; SHA-256 of the new owner's domain CA SubjectPublicKeyInfo
//	  4 => uint,            ; not-after, unix seconds
//	  5 => uint,            ; issued-at, unix seconds
//	  6 => bstr .size 16,   ; nonce: two authorisations never coincide
//	}
type Authorization struct {
	Device   [32]byte  `cbor:"1,keyasint"`
	Serial   string    `cbor:"2,keyasint"`
	NewOwner [32]byte  `cbor:"3,keyasint"`
	NotAfter time.Time `cbor:"-"`
	IssuedAt time.Time `cbor:"-"`
	Nonce    []byte    `cbor:"6,keyasint"`
}

type wireAuthorization struct {
	Device   []byte `cbor:"1,keyasint"`
	Serial   string `cbor:"2,keyasint"`
	NewOwner []byte `cbor:"3,keyasint"`
	NotAfter uint64 `cbor:"4,keyasint"`
	IssuedAt uint64 `cbor:"5,keyasint"`
	Nonce    []byte `cbor:"6,keyasint"`
}

// SignAuthorization signs a with the registrar key, carrying chain (the
// registrar certificate first, then its CAs) in the x5bag. A fresh nonce is
// read from rand.
func SignAuthorization(rand io.Reader, key crypto.Signer, chain []*x509.Certificate, a *Authorization) ([]byte, error) {
	if a.Serial == "" || a.NotAfter.IsZero() || a.IssuedAt.IsZero() {
		return nil, fmt.Errorf("%w: serial, not-after and issued-at are required", ErrMalformed)
	}
	a.Nonce = make([]byte, 16)
	if _, err := io.ReadFull(rand, a.Nonce); err != nil {
		return nil, err
	}
	w := wireAuthorization{Device: a.Device[:], Serial: a.Serial, NewOwner: a.NewOwner[:],
		NotAfter: uint64(a.NotAfter.Unix()), IssuedAt: uint64(a.IssuedAt.Unix()), Nonce: a.Nonce}
	return signWithChain(rand, key, chain, w)
}

// SignedAuthorization is a parsed authorisation.
type SignedAuthorization struct {
	Authorization
	Msg *cose.Sign1
	// Hash is the SHA-256 of the whole COSE_Sign1: how records and the
	// MASA name the authorisation.
	Hash [32]byte
}

// ParseAuthorization decodes an authorisation strictly. It does not verify
// the signature (see Signer).
func ParseAuthorization(data []byte) (*SignedAuthorization, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var w wireAuthorization
	if err := cose.Unmarshal(m.Payload(), &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(w.Device) != 32 || len(w.NewOwner) != 32 || w.Serial == "" || len(w.Nonce) != 16 || w.NotAfter == 0 || w.IssuedAt == 0 {
		return nil, fmt.Errorf("%w: authorization fields", ErrMalformed)
	}
	out := &SignedAuthorization{Msg: m, Hash: sha256.Sum256(data)}
	copy(out.Device[:], w.Device)
	copy(out.NewOwner[:], w.NewOwner)
	out.Serial, out.Nonce = w.Serial, w.Nonce
	out.NotAfter, out.IssuedAt = time.Unix(int64(w.NotAfter), 0).UTC(), time.Unix(int64(w.IssuedAt), 0).UTC()
	return out, nil
}

// Order is a repossession order of a recovery authority.
//
//	order = {
//	  1 => tstr,            ; serial-number
//	  2 => bstr .size 32,   ; SHA-256 of the new owner's domain CA SubjectPublicKeyInfo
//	  3 => uint,            ; issued-at, unix seconds
//	  4 => tstr,            ; reason (court order, foreclosure, ...)
//	}
type Order struct {
	Serial   string
	NewOwner [32]byte
	IssuedAt time.Time
	Reason   string
}

type wireOrder struct {
	Serial   string `cbor:"1,keyasint"`
	NewOwner []byte `cbor:"2,keyasint"`
	IssuedAt uint64 `cbor:"3,keyasint"`
	Reason   string `cbor:"4,keyasint"`
}

// SignOrder signs an order with a recovery authority's key (kid in the
// protected header).
func SignOrder(rand io.Reader, key crypto.Signer, o *Order) ([]byte, error) {
	if o.Serial == "" || o.Reason == "" || o.IssuedAt.IsZero() {
		return nil, fmt.Errorf("%w: serial, reason and issued-at are required", ErrMalformed)
	}
	payload, err := cose.Marshal(wireOrder{Serial: o.Serial, NewOwner: o.NewOwner[:], IssuedAt: uint64(o.IssuedAt.Unix()), Reason: o.Reason})
	if err != nil {
		return nil, err
	}
	kid, err := cose.KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return cose.Sign(rand, key, payload, cose.SignOptions{KID: kid})
}

// SignedOrder is a parsed order.
type SignedOrder struct {
	Order
	Msg  *cose.Sign1
	Hash [32]byte
}

// ParseOrder decodes an order strictly; Msg.Verify checks the signature.
func ParseOrder(data []byte) (*SignedOrder, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var w wireOrder
	if err := cose.Unmarshal(m.Payload(), &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if w.Serial == "" || len(w.NewOwner) != 32 || w.IssuedAt == 0 || w.Reason == "" {
		return nil, fmt.Errorf("%w: order fields", ErrMalformed)
	}
	out := &SignedOrder{Msg: m, Hash: sha256.Sum256(data)}
	out.Serial, out.Reason, out.IssuedAt = w.Serial, w.Reason, time.Unix(int64(w.IssuedAt), 0).UTC()
	copy(out.NewOwner[:], w.NewOwner)
	return out, nil
}

// Claim is a repossession claim.
//
//	claim = {
//	  1 => tstr,            ; serial-number
//	  2 => bstr,            ; the order (COSE_Sign1)
//	  3 => bstr .size 32,   ; proof of possession (Proof)
//	}
type Claim struct {
	Serial string `cbor:"1,keyasint"`
	Order  []byte `cbor:"2,keyasint"`
	Proof  []byte `cbor:"3,keyasint"`
}

// SignClaim signs a claim with the claimant registrar's key and chain.
func SignClaim(rand io.Reader, key crypto.Signer, chain []*x509.Certificate, c *Claim) ([]byte, error) {
	if c.Serial == "" || len(c.Order) == 0 || len(c.Proof) != 32 {
		return nil, fmt.Errorf("%w: serial, order and a 32-byte proof are required", ErrMalformed)
	}
	return signWithChain(rand, key, chain, c)
}

// SignedClaim is a parsed claim.
type SignedClaim struct {
	Claim
	Msg *cose.Sign1
}

// ParseClaim decodes a claim strictly.
func ParseClaim(data []byte) (*SignedClaim, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var c Claim
	if err := cose.Unmarshal(m.Payload(), &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if c.Serial == "" || len(c.Order) == 0 || len(c.Proof) != 32 {
		return nil, fmt.Errorf("%w: claim fields", ErrMalformed)
	}
	return &SignedClaim{Claim: c, Msg: m}, nil
}

// Objection is the current owner's objection to a repossession claim.
//
//	objection = {
//	  1 => tstr,            ; serial-number
//	  2 => uint,            ; issued-at
//	}
type Objection struct {
	Serial   string `cbor:"1,keyasint"`
	IssuedAt uint64 `cbor:"2,keyasint"`
}

// SignObjection signs an objection with the owner registrar's key and chain.
func SignObjection(rand io.Reader, key crypto.Signer, chain []*x509.Certificate, serial string, now time.Time) ([]byte, error) {
	return signWithChain(rand, key, chain, Objection{Serial: serial, IssuedAt: uint64(now.Unix())})
}

// ParseObjection decodes an objection strictly.
func ParseObjection(data []byte) (*Objection, *cose.Sign1, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var o Objection
	if err := cose.Unmarshal(m.Payload(), &o); err != nil || o.Serial == "" || o.IssuedAt == 0 {
		return nil, nil, fmt.Errorf("%w: objection", ErrMalformed)
	}
	return &o, m, nil
}

// ClaimsQuery asks the MASA for the repossession claims against the
// signing domain's devices. Its key is one no other document here uses, so
// neither can be taken for the other.
//
//	claims-query = {
//	  10 => uint,           ; issued-at
//	}
type ClaimsQuery struct {
	IssuedAt uint64 `cbor:"10,keyasint"`
}

// SignClaimsQuery signs a claims query with the owner registrar's key and
// chain.
func SignClaimsQuery(rand io.Reader, key crypto.Signer, chain []*x509.Certificate, now time.Time) ([]byte, error) {
	return signWithChain(rand, key, chain, ClaimsQuery{IssuedAt: uint64(now.Unix())})
}

// ParseClaimsQuery decodes a claims query strictly.
func ParseClaimsQuery(data []byte) (*ClaimsQuery, *cose.Sign1, error) {
	m, err := cose.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var q ClaimsQuery
	if err := cose.Unmarshal(m.Payload(), &q); err != nil || q.IssuedAt == 0 {
		return nil, nil, fmt.Errorf("%w: claims query", ErrMalformed)
	}
	return &q, m, nil
}

// Claim statuses in the claims feed.
const (
	ClaimPending   = "pending"   // the notice runs, or ran out and the claimant has not onboarded the device yet
	ClaimObjected  = "objected"  // the owner objected: the claim never matures
	ClaimCompleted = "completed" // the claimant got a voucher: the device is theirs
)

// ClaimNotice is an entry of a MASA's claims feed, the JSON answer
// {"claims": [...]} to a ClaimsQuery: a repossession claimed against a
// device while the querying domain owned it.
type ClaimNotice struct {
	Serial      string    `json:"serial"`
	OrderHash   string    `json:"order_hash"` // SHA-256 of the recovery authority's order, hex
	NewOwner    string    `json:"new_owner"`  // SHA-256 of the claimant's domain CA SPKI, hex
	Reason      string    `json:"reason,omitempty"`
	NoticeUntil time.Time `json:"notice_until"`
	Status      string    `json:"status"` // ClaimPending, ClaimObjected or ClaimCompleted
}

func signWithChain(rand io.Reader, key crypto.Signer, chain []*x509.Certificate, v any) ([]byte, error) {
	payload, err := cose.Marshal(v)
	if err != nil {
		return nil, err
	}
	bag := make([][]byte, len(chain))
	for i, c := range chain {
		bag[i] = c.Raw
	}
	return cose.Sign(rand, key, payload, cose.SignOptions{X5Bag: bag})
}

// Signer finds the certificate in m's x5bag whose key signed m.
func Signer(m *cose.Sign1) (*x509.Certificate, []*x509.Certificate, error) {
	bag, err := m.X5Bag()
	if err != nil || len(bag) == 0 {
		return nil, nil, fmt.Errorf("%w: no x5bag", ErrSigner)
	}
	for _, c := range bag {
		if m.Verify(c.PublicKey) == nil {
			return c, bag, nil
		}
	}
	return nil, nil, ErrSigner
}

// SPKIHash is SHA-256 over a certificate's SubjectPublicKeyInfo: how a
// domain is named in these documents.
func SPKIHash(c *x509.Certificate) [32]byte { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

// Proof is the proof of possession in a claim: HMAC-SHA256 keyed with the
// label secret over "tumbler-repossess-v1" || serial || new owner. Only
// someone who read the label (or the MASA, which derives the secret) can
// compute it, and it binds the claim to one domain.
func Proof(labelSecret []byte, serial string, newOwner [32]byte) []byte {
	h := hmac.New(sha256.New, labelSecret)
	h.Write([]byte("tumbler-repossess-v1"))
	h.Write([]byte(serial))
	h.Write(newOwner[:])
	return h.Sum(nil)
}

// Device labels carry "TB1:<serial>:<secret hex>", the payload of the QR
// code printed on the device.
const labelPrefix = "TB1:"

// FormatLabel returns a device label payload.
func FormatLabel(serial string, secret []byte) string {
	return labelPrefix + serial + ":" + hex.EncodeToString(secret)
}

// ParseLabel reads a device label payload.
func ParseLabel(s string) (serial string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), labelPrefix)
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 {
		return "", nil, fmt.Errorf("%w: want %s<serial>:<secret hex>", ErrLabel, labelPrefix)
	}
	secret, err = hex.DecodeString(rest[i+1:])
	if err != nil || len(secret) < 16 {
		return "", nil, fmt.Errorf("%w: secret must be at least 16 bytes of hex", ErrLabel)
	}
	return rest[:i], secret, nil
}
