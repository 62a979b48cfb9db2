package upstream

import "errors"

// Sentinel errors. Detail is added by %w wrapping; test with errors.Is.
var (
	// ErrConfig: a sink configuration, a constructor argument or an option
	// is unusable. Configuration errors are *FieldError values that name
	// the field.
	ErrConfig = errors.New("upstream: bad configuration")
	// ErrRunning: Run was called on a Deliverer or sink that is already
	// running (or has run).
	ErrRunning = errors.New("upstream: already running")
	// ErrNotConnected: the MQTT sink has no connection to its broker. It
	// wraps the last connect error (an *autopaho.ConnackError when the
	// broker refused the CONNECT, e.g. reason 0x86 bad user name or
	// password).
	ErrNotConnected = errors.New("upstream: not connected")
	// ErrSessionLost: the broker came back without the MQTT session, so
	// in-flight publishes will never be acknowledged and are retried.
	ErrSessionLost = errors.New("upstream: mqtt session lost")
	// ErrSourceOrder: the Source returned records that are not in strictly
	// increasing Pos order, or not after the cursor. Nothing is delivered
	// from such a batch.
	ErrSourceOrder = errors.New("upstream: source records out of order")
	// ErrSignature: a Tumbler-Signature header is malformed or no v1
	// signature in it matches the body.
	ErrSignature = errors.New("upstream: webhook signature invalid")
	// ErrSignatureTime: the Tumbler-Signature timestamp is further from
	// the verifier's clock than the tolerance allows (a replay, or a
	// skewed clock).
	ErrSignatureTime = errors.New("upstream: webhook signature timestamp out of tolerance")
)

// FieldError is a configuration error that names the bad field with its
// path as written in gateway.yaml, e.g. "upstream[1].mqtt.url". It matches
// ErrConfig under errors.Is.
type FieldError struct {
	Field  string // e.g. "upstream[1].mqtt.url"
	Reason string // e.g. `scheme "http" is not mqtt, mqtts, tcp, ssl or tls`
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrConfig) true.
func (e *FieldError) Is(target error) bool { return target == ErrConfig }

// under prefixes the field path of a *FieldError found in err; other errors
// pass through.
func under(prefix string, err error) error {
	var fe *FieldError
	if err == nil || !errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: prefix + "." + fe.Field, Reason: fe.Reason}
}
