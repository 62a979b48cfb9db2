package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// Sentinel errors. Detail is added by %w wrapping; test with errors.Is.
var (
	// ErrConfig: the Config, a constructor argument or an option is
	// unusable; the message names the field.
	ErrConfig = errors.New("api: bad configuration")
	// ErrResponse: the API answered something a Client cannot use (not
	// JSON, too large, a redirect).
	ErrResponse = errors.New("api: unexpected response")
)

// Error is an error response of the API as a Client sees it: the HTTP
// status and the text of the body's "error" member. It matches the
// ownership sentinel its status stands for under errors.Is:
//
//	400, 413, 415  ownership.ErrInvalid
//	401            ownership.ErrUnauthorized
//	403            ownership.ErrRefused
//	404            ownership.ErrNotFound
//	409            ownership.ErrConflict
//	502, 503, 504  ownership.ErrUnavailable
type Error struct {
	Status  int    // HTTP status code
	Message string // the API's error text
}

// Error returns e.g. "409 Conflict: not allowed in the device's state".
func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is the ownership sentinel of e's status.
func (e *Error) Is(target error) bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return target == ownership.ErrInvalid
	case http.StatusUnauthorized:
		return target == ownership.ErrUnauthorized
	case http.StatusForbidden:
		return target == ownership.ErrRefused
	case http.StatusNotFound:
		return target == ownership.ErrNotFound
	case http.StatusConflict:
		return target == ownership.ErrConflict
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return target == ownership.ErrUnavailable
	}
	return false
}

// statusOf maps an error of the ownership.Service to the HTTP status and
// the text the API sends. Only the caller-facing errors (4xx) carry the
// service's message, which ownership writes for the caller ("the message
// names the field", "says why"); 5xx send a fixed text and the cause is
// logged.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, ownership.ErrUnauthorized):
		return http.StatusUnauthorized, ownership.ErrUnauthorized.Error()
	case errors.Is(err, ownership.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ownership.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, ownership.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ownership.ErrRefused):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, ownership.ErrUnavailable):
		return http.StatusServiceUnavailable, ownership.ErrUnavailable.Error()
	}
	return http.StatusInternalServerError, "internal error"
}

// httpError is a failure the API itself detects (authentication, request
// syntax): the status and text to send, and a cause to log.
type httpError struct {
	status int
	msg    string
	cause  error
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.cause }

// Failures of authentication and authorisation.
var (
	errNoToken   = &httpError{status: http.StatusUnauthorized, msg: "a bearer token is required"}
	errForbidden = &httpError{status: http.StatusForbidden, msg: "a delegation token may only read the devices delegated to it"}
)

// invalid is a 400 naming what is wrong with the request.
func invalid(format string, a ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: "invalid request: " + fmt.Sprintf(format, a...)}
}
