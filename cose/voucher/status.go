package voucher

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// StatusVersion is the only status telemetry version defined.
const StatusVersion = 1

// Status is a status telemetry report a pledge POSTs to /vs (voucher status)
// or /es (enroll status), in CBOR (CF 60) with text keys.
//
//	status-post = {
//	  "version": uint,            ; 1
//	  "status": bool,
//	  ? "reason": text,
//	  ? "reason-context": { $$arbitrary-map }
//	}
//
// RFC 8995 §5.7 (Figure 15) and §5.9.4 (Figure 19);
// draft-ietf-anima-constrained-voucher-31 §"Status Telemetry Returns".
type Status struct {
	// Version must be StatusVersion.
	Version int

	// Status is true on success.
	Status bool

	// Reason is a human-readable explanation; empty means absent. RFC 8995
	// says a failure report SHOULD carry one; a failure without it is
	// accepted.
	Reason string

	// ReasonContext is the encoded reason-context map, nil if absent. It is
	// kept as received (it is arbitrary data), after a strict decoding
	// check.
	ReasonContext cbor.RawMessage
}

// Status map keys (RFC 8995 §5.7).
const (
	keyVersion       = "version"
	keyStatus        = "status"
	keyReason        = "reason"
	keyReasonContext = "reason-context"
)

// ParseStatus decodes a CBOR status telemetry report strictly: text keys
// only, no unknown or duplicate keys, version 1 (ErrStatusVersion),
// status a boolean, reason a text string, reason-context a map.
// Structural failures wrap ErrMalformed; a missing version or status
// ErrMissingField.
func ParseStatus(data []byte) (*Status, error) {
	var m map[string]cbor.RawMessage
	if err := cose.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: status: %w", ErrMalformed, err)
	}
	s := &Status{}
	for k, raw := range m {
		switch k {
		case keyVersion:
			if major(raw) != majorUint {
				return nil, fmt.Errorf("%w: version is not an unsigned integer", ErrMalformed)
			}
			var v uint64
			if err := cose.DecMode().Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("%w: version: %w", ErrMalformed, err)
			}
			if v != StatusVersion {
				return nil, fmt.Errorf("%w: %d", ErrStatusVersion, v)
			}
			s.Version = StatusVersion
		case keyStatus:
			switch {
			case bytes.Equal(raw, []byte{0xf4}):
				s.Status = false
			case bytes.Equal(raw, []byte{0xf5}):
				s.Status = true
			default:
				return nil, fmt.Errorf("%w: status is not a boolean", ErrMalformed)
			}
		case keyReason:
			r, err := decodeText(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: reason: %w", ErrMalformed, err)
			}
			s.Reason = r
		case keyReasonContext:
			if err := checkReasonContext(raw); err != nil {
				return nil, err
			}
			s.ReasonContext = bytes.Clone(raw)
		default:
			return nil, fmt.Errorf("%w: unknown status key %q", ErrMalformed, k)
		}
	}
	if _, ok := m[keyVersion]; !ok {
		return nil, fmt.Errorf("%w: version", ErrMissingField)
	}
	if _, ok := m[keyStatus]; !ok {
		return nil, fmt.Errorf("%w: status", ErrMissingField)
	}
	return s, nil
}

// checkReasonContext requires a map that decodes strictly (no duplicate
// keys, keys of a hashable type).
func checkReasonContext(raw cbor.RawMessage) error {
	if major(raw) != majorMap {
		return fmt.Errorf("%w: reason-context is not a map", ErrMalformed)
	}
	var m map[any]any
	if err := cose.DecMode().Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%w: reason-context: %w", ErrMalformed, err)
	}
	return nil
}

// MarshalCBOR implements cbor.Marshaler. The keys are written in the order
// of the CDDL (version, status, reason, reason-context), which reproduces
// the draft's example bytes; absent optional keys are omitted.
func (s *Status) MarshalCBOR() ([]byte, error) {
	if s.Version != StatusVersion {
		return nil, fmt.Errorf("%w: %d", ErrStatusVersion, s.Version)
	}
	n := 2
	if s.Reason != "" {
		n++
	}
	if s.ReasonContext != nil {
		if err := checkReasonContext(s.ReasonContext); err != nil {
			return nil, err
		}
		n++
	}
	out := []byte{0xa0 | byte(n)} // map(n), n <= 4
	add := func(k string, v any) error {
		kb, err := cose.Marshal(k)
		if err != nil {
			return err
		}
		vb, err := cose.Marshal(v)
		if err != nil {
			return err
		}
		out = append(append(out, kb...), vb...)
		return nil
	}
	if err := add(keyVersion, StatusVersion); err != nil {
		return nil, err
	}
	if err := add(keyStatus, s.Status); err != nil {
		return nil, err
	}
	if s.Reason != "" {
		if err := add(keyReason, s.Reason); err != nil {
			return nil, err
		}
	}
	if s.ReasonContext != nil {
		if err := add(keyReasonContext, s.ReasonContext); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UnmarshalCBOR implements cbor.Unmarshaler with the rules of ParseStatus.
func (s *Status) UnmarshalCBOR(data []byte) error {
	p, err := ParseStatus(data)
	if err != nil {
		return err
	}
	*s = *p
	return nil
}

var (
	_ cbor.Marshaler   = (*Status)(nil)
	_ cbor.Unmarshaler = (*Status)(nil)
)
