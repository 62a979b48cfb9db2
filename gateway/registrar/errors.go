package registrar

import "errors"

// Reasons the registrar refuses a request. Each is wrapped in a coap.Error
// with its code at the point of refusal; the diagnostic payload is the
// short text in the coap.Error, the sentinel is for errors.Is.
var (
	// ErrNotPledge: /rv needs a DTLS client certificate from a trusted
	// manufacturer (an IDevID).
	ErrNotPledge = errors.New("peer is not an IDevID pledge")
	// ErrContentFormat: the request's Content-Format is not accepted.
	ErrContentFormat = errors.New("unsupported content format")
	// ErrAccept: no response format the client accepts.
	ErrAccept = errors.New("unacceptable response format")
	// ErrMalformed: the payload does not decode.
	ErrMalformed = errors.New("malformed request")
	// ErrSignature: the pledge voucher-request is not signed by the
	// pledge's IDevID.
	ErrSignature = errors.New("voucher-request signature invalid")
	// ErrPolicy: the owner did not register this device (policy "expected").
	ErrPolicy = errors.New("device not expected by this domain")
	// ErrMASAUnavailable: the MASA could not be reached or failed.
	ErrMASAUnavailable = errors.New("MASA unavailable")
	// ErrMASARefused: the MASA refused to issue a voucher.
	ErrMASARefused = errors.New("MASA refused the voucher-request")
	// ErrBadVoucher: the MASA's voucher does not match the request.
	ErrBadVoucher = errors.New("MASA returned an unusable voucher")
	// ErrUnknownDevice: the device has not obtained a voucher here.
	ErrUnknownDevice = errors.New("no voucher exchange for this device")
	// ErrState: the request does not fit the device's state.
	ErrState = errors.New("request does not fit the device state")
	// ErrConfig: invalid registrar configuration.
	ErrConfig = errors.New("invalid registrar configuration")
)
