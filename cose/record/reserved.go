package record

import "fmt"

// ReservedBody carries the body of a record of a reserved type (transfer,
// repossess, reset, decommission, delegate) through the TypedBody API,
// until those types get bodies of their own. Set Type before DecodeBody.
//
//	reserved-type = "transfer" / "repossess" / "reset" / "decommission" / "delegate"
//	reserved-body = { * int => any }
//
// docs/records.cddl.
type ReservedBody struct {
	// Type is one of the reserved types.
	Type Type
	// Body is the body; encoding re-encodes its values canonically.
	Body Body
}

// RecordType returns b.Type.
func (b *ReservedBody) RecordType() Type { return b.Type }

// isReserved reports whether t is a reserved type.
func isReserved(t Type) bool {
	switch t {
	case TypeTransfer, TypeRepossess, TypeReset, TypeDecommission, TypeDelegate:
		return true
	}
	return false
}

func (b *ReservedBody) encode() (Body, error) {
	if !isReserved(b.Type) {
		return nil, fmt.Errorf("%w: %q is not a reserved type", ErrType, b.Type)
	}
	return canonicalBody(b.Body)
}

func (b *ReservedBody) decode(body Body) error {
	if !isReserved(b.Type) {
		return fmt.Errorf("%w: %q is not a reserved type", ErrType, b.Type)
	}
	c, err := canonicalBody(body)
	if err != nil {
		return err
	}
	b.Body = c
	return nil
}
