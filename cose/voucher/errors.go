package voucher

import "errors"

// Decoding errors. Size and CBOR-level failures additionally wrap
// cose.ErrTooLarge or cose.ErrMalformed.
var (
	// ErrMalformed: the artifact is not a voucher or voucher-request as
	// defined by the YANG modules (wrong top-level key, wrong value type,
	// nonce length outside 8..32, bad date, empty value, ...).
	ErrMalformed = errors.New("voucher: malformed artifact")

	// ErrUnknownLeaf: the container holds a key that is not a leaf of the
	// module (by delta SID, absolute SID or name).
	ErrUnknownLeaf = errors.New("voucher: unknown leaf")

	// ErrMissingField: a leaf or input required at this step is absent.
	ErrMissingField = errors.New("voucher: required field missing")
)

// Validation errors (draft-ietf-anima-constrained-voucher-31, RFC 8995 §5.5,
// rfc8366bis). Each check fails with its own sentinel.
var (
	// ErrNonceMissing: no nonce where Tumbler requires one (Tumbler issues
	// and accepts nonced vouchers only on the registrar and MASA paths).
	ErrNonceMissing = errors.New("voucher: nonce missing")

	// ErrNonceMismatch: the nonce differs from the one it must echo.
	ErrNonceMismatch = errors.New("voucher: nonce mismatch")

	// ErrSerialMismatch: serial-number differs from the authenticated
	// IDevID's or from the other artifact's.
	ErrSerialMismatch = errors.New("voucher: serial-number mismatch")

	// ErrIssuerMismatch: idevid-issuer differs from the IDevID's
	// Authority Key Identifier.
	ErrIssuerMismatch = errors.New("voucher: idevid-issuer mismatch")

	// ErrProximityMissing: a proximity voucher-request names no registrar
	// (no proximity-registrar-cert, -pubk or -pubk-sha256).
	ErrProximityMissing = errors.New("voucher: proximity registrar missing")

	// ErrProximityMismatch: the proximity-registrar-* leaf does not match
	// the registrar's end-entity certificate.
	ErrProximityMismatch = errors.New("voucher: proximity registrar mismatch")

	// ErrAssertion: the assertion is absent or not acceptable.
	ErrAssertion = errors.New("voucher: assertion not acceptable")

	// ErrExpired: expires-on has passed.
	ErrExpired = errors.New("voucher: expired")

	// ErrNotYetValid: created-on lies in the future beyond MaxClockSkew.
	ErrNotYetValid = errors.New("voucher: created in the future")

	// ErrPinMissing: the voucher pins nothing (no pinned-domain-cert,
	// -pubk or -pubk-sha256).
	ErrPinMissing = errors.New("voucher: no pinned domain identity")

	// ErrPinMismatch: the registrar's certificate chain does not match the
	// pinned domain identity.
	ErrPinMismatch = errors.New("voucher: registrar does not match the pinned domain identity")

	// ErrNoSerialNumber: the certificate subject has no (single)
	// serialNumber attribute (OID 2.5.4.5).
	ErrNoSerialNumber = errors.New("voucher: certificate has no subject serialNumber")
)

// Status telemetry errors.
var (
	// ErrStatusVersion: the telemetry version is not 1.
	ErrStatusVersion = errors.New("voucher: unsupported status telemetry version")
)
