package voucher

import "strconv"

// Assertion is the voucher assertion enumeration: how the MASA verified
// ownership (ietf-voucher YANG "leaf assertion", rfc8366bis). In CBOR it is
// the enum value (uint); in name-keyed or JSON data it may be the enum name.
//
//	assertion: enumeration { verified(0), logged(1), proximity(2), agent-proximity(3) }
type Assertion uint8

// Assertion values (rfc8366bis ietf-voucher YANG).
const (
	Verified       Assertion = 0
	Logged         Assertion = 1
	Proximity      Assertion = 2
	AgentProximity Assertion = 3
)

var assertionNames = [...]string{"verified", "logged", "proximity", "agent-proximity"}

// String returns the YANG enum name, e.g. "proximity".
func (a Assertion) String() string {
	if int(a) < len(assertionNames) {
		return assertionNames[a]
	}
	return "assertion(" + strconv.Itoa(int(a)) + ")"
}

// valid reports whether a is one of the defined enum values.
func (a Assertion) valid() bool { return int(a) < len(assertionNames) }

// parseAssertionName maps an enum name to its value.
func parseAssertionName(s string) (Assertion, bool) {
	for i, n := range assertionNames {
		if n == s {
			return Assertion(i), true
		}
	}
	return 0, false
}

// Ptr returns a pointer to v, for the optional Assertion and
// DomainCertRevocationChecks fields: Assertion: voucher.Ptr(voucher.Proximity).
func Ptr[T Assertion | bool](v T) *T { return &v }

// AssertionValue returns the assertion and whether it is present.
func (r *Request) AssertionValue() (Assertion, bool) { return derefAssertion(r.Assertion) }

// AssertionValue returns the assertion and whether it is present.
func (v *Voucher) AssertionValue() (Assertion, bool) { return derefAssertion(v.Assertion) }

func derefAssertion(a *Assertion) (Assertion, bool) {
	if a == nil {
		return 0, false
	}
	return *a, true
}

// assertionText renders an optional assertion for error messages.
func assertionText(a *Assertion) string {
	if a == nil {
		return "absent"
	}
	return a.String()
}
