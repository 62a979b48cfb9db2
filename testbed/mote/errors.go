package mote

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
)

var (
	// ErrRefused: the registrar answered a step with an error code.
	ErrRefused = errors.New("registrar refused")
	// ErrVoucher: the voucher did not validate (signature, content, pin).
	ErrVoucher = errors.New("voucher rejected")
	// ErrEnroll: the LDevID does not chain to the pinned domain CA or does
	// not match the request.
	ErrEnroll = errors.New("enrollment failed")
	// ErrDiscovery: no registrar found.
	ErrDiscovery = errors.New("registrar discovery failed")
	// ErrIdentity: the factory identity is unusable.
	ErrIdentity = errors.New("bad device identity")
)

// StepError says which onboarding step failed and what the registrar said.
type StepError struct {
	Step string
	// Code is the CoAP response code, 0 for a local or transport failure.
	Code       codes.Code
	Diagnostic string
	Err        error
}

func (e *StepError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s: %s %q", e.Step, coap.Dotted(e.Code), e.Diagnostic)
	}
	return fmt.Sprintf("%s: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// retryable reports whether the step may succeed if tried again: transport
// failures (a broken DTLS session) and 5.03 (MASA unavailable).
func (e *StepError) retryable() bool {
	if e.Code == codes.ServiceUnavailable {
		return true
	}
	return e.Code == 0 && !errors.Is(e.Err, ErrVoucher) && !errors.Is(e.Err, ErrEnroll)
}
