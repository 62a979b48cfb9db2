package masa

import "errors"

// Reasons a voucher request is refused. Each maps to one HTTP status at the
// edge (see status).
var (
	// ErrMediaType: the request is not application/voucher+cose (415), or
	// the Accept header allows no format the MASA produces (406).
	ErrMediaType     = errors.New("unsupported media type")
	ErrNotAcceptable = errors.New("no acceptable response format")
	// ErrMalformed: the body is not a well-formed signed voucher-request (400).
	ErrMalformed = errors.New("malformed voucher-request")
	// ErrRegistrar: the registrar could not be authenticated: no cmcRA
	// certificate in the x5bag, a bad signature, a broken chain, or a TLS
	// client certificate that is not the signer's (403).
	ErrRegistrar = errors.New("registrar not authenticated")
	// ErrUnknownDevice: no IDevID issued by this manufacturer in the
	// request (404).
	ErrUnknownDevice = errors.New("device not made by this manufacturer")
	// ErrPledge: the prior-signed-voucher-request is missing, badly signed
	// or inconsistent with the registrar's request (403).
	ErrPledge = errors.New("pledge voucher-request invalid")
	// ErrOwned: the device belongs to another domain (403).
	ErrOwned = errors.New("device owned by another domain")
	// ErrConfig: invalid configuration.
	ErrConfig = errors.New("invalid MASA configuration")
)
