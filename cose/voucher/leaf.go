package voucher

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
)

// leafID identifies a leaf of the voucher-artifact grouping or of the
// voucher-request additions, independently of its SID in either module.
type leafID uint8

const (
	leafAssertion leafID = iota + 1
	leafCreatedOn
	leafDomainCertRevocationChecks
	leafExpiresOn
	leafIDevIDIssuer
	leafLastRenewalDate
	leafNonce
	leafPinnedDomainCert
	leafPinnedDomainPubK
	leafPinnedDomainPubKSHA256
	leafSerialNumber
	leafAdditionalConfigurationURL
	leafESTDomain
	leafManufacturerProprietary
	leafExtensions
	leafPriorSignedVoucherRequest
	leafProximityRegistrarCert
	leafProximityRegistrarPubKSHA256
	leafProximityRegistrarPubK
	leafAgentProvidedProximityRegistrarCert
	leafAgentSignCert
	leafAgentSignedData
)

// allLeaves lists every leafID in order, for deterministic iteration.
var allLeaves = func() []leafID {
	out := make([]leafID, 0, leafAgentSignedData)
	for id := leafAssertion; id <= leafAgentSignedData; id++ {
		out = append(out, id)
	}
	return out
}()

// leafNames are the YANG identifiers, used as keys in name-keyed CBOR.
var leafNames = map[leafID]string{
	leafAssertion:                           "assertion",
	leafCreatedOn:                           "created-on",
	leafDomainCertRevocationChecks:          "domain-cert-revocation-checks",
	leafExpiresOn:                           "expires-on",
	leafIDevIDIssuer:                        "idevid-issuer",
	leafLastRenewalDate:                     "last-renewal-date",
	leafNonce:                               "nonce",
	leafPinnedDomainCert:                    "pinned-domain-cert",
	leafPinnedDomainPubK:                    "pinned-domain-pubk",
	leafPinnedDomainPubKSHA256:              "pinned-domain-pubk-sha256",
	leafSerialNumber:                        "serial-number",
	leafAdditionalConfigurationURL:          "additional-configuration-url",
	leafESTDomain:                           "est-domain",
	leafManufacturerProprietary:             "manufacturer-proprietary",
	leafExtensions:                          "extensions",
	leafPriorSignedVoucherRequest:           "prior-signed-voucher-request",
	leafProximityRegistrarCert:              "proximity-registrar-cert",
	leafProximityRegistrarPubKSHA256:        "proximity-registrar-pubk-sha256",
	leafProximityRegistrarPubK:              "proximity-registrar-pubk",
	leafAgentProvidedProximityRegistrarCert: "agent-provided-proximity-registrar-cert",
	leafAgentSignCert:                       "agent-sign-cert",
	leafAgentSignedData:                     "agent-signed-data",
}

// module is one YANG structure: its top-level SID and name and its leaves'
// SID deltas (RFC 9254 §3.2).
type module struct {
	name    string
	sid     uint64
	deltas  map[leafID]int64
	byDelta map[int64]leafID
	byName  map[string]leafID
}

func newModule(name string, sid uint64, deltas map[leafID]int64) *module {
	m := &module{name: name, sid: sid, deltas: deltas, byDelta: map[int64]leafID{}, byName: map[string]leafID{}}
	for id, d := range deltas {
		m.byDelta[d] = id
		m.byName[leafNames[id]] = id
	}
	return m
}

// voucherModule is /ietf-voucher:voucher, SID 2451 ([VB]
// ietf-voucher@2025-12-18.sid; spec/cbrski.md §3.2).
var voucherModule = newModule("ietf-voucher:voucher", 2451, map[leafID]int64{
	leafAssertion:                  1,  // 2452
	leafCreatedOn:                  2,  // 2453
	leafDomainCertRevocationChecks: 3,  // 2454
	leafExpiresOn:                  4,  // 2455
	leafIDevIDIssuer:               5,  // 2456
	leafLastRenewalDate:            6,  // 2457
	leafNonce:                      7,  // 2458
	leafPinnedDomainCert:           8,  // 2459
	leafPinnedDomainPubK:           9,  // 2460
	leafPinnedDomainPubKSHA256:     10, // 2461
	leafSerialNumber:               11, // 2462
	leafAdditionalConfigurationURL: 12, // 2463
	leafESTDomain:                  13, // 2464
	leafManufacturerProprietary:    14, // 2465
	leafExtensions:                 15, // 2466
})

// requestModule is /ietf-voucher-request:voucher, SID 2501 ([VB]
// ietf-voucher-request@2025-12-18.sid; spec/cbrski.md §3.3). Note that
// pubk-sha256 (11) precedes pubk (12) here, the reverse of the voucher.
var requestModule = newModule("ietf-voucher-request:voucher", 2501, map[leafID]int64{
	leafAssertion:                           1,  // 2502
	leafCreatedOn:                           2,  // 2503
	leafDomainCertRevocationChecks:          3,  // 2504
	leafExpiresOn:                           4,  // 2505
	leafIDevIDIssuer:                        5,  // 2506
	leafLastRenewalDate:                     6,  // 2507
	leafNonce:                               7,  // 2508
	leafPinnedDomainCert:                    8,  // 2509
	leafPriorSignedVoucherRequest:           9,  // 2510
	leafProximityRegistrarCert:              10, // 2511
	leafProximityRegistrarPubKSHA256:        11, // 2512
	leafProximityRegistrarPubK:              12, // 2513
	leafSerialNumber:                        13, // 2514
	leafAgentProvidedProximityRegistrarCert: 14, // 2515
	leafAgentSignCert:                       15, // 2516
	leafAgentSignedData:                     16, // 2517
	leafPinnedDomainPubK:                    17, // 2518
	leafPinnedDomainPubKSHA256:              18, // 2519
	leafAdditionalConfigurationURL:          19, // 2520
	leafESTDomain:                           20, // 2521
	leafExtensions:                          21, // 2522
	leafManufacturerProprietary:             22, // 2523
})

// tagSID is the CBOR tag of an absolute SID used as a map key inside a
// container (RFC 9254 §3.2).
const tagSID = 47

// CBOR major types (RFC 8949 §3.1).
const (
	majorUint  = 0
	majorNint  = 1
	majorBstr  = 2
	majorTstr  = 3
	majorArray = 4
	majorMap   = 5
	majorTag   = 6
)

func major(raw []byte) byte {
	if len(raw) == 0 {
		return 0xff
	}
	return raw[0] >> 5
}

// decodeKey maps a container key (delta SID, tag-47 absolute SID or leaf
// name) to its leaf in mod.
func decodeKey(data []byte, mod *module) (leafID, error) {
	switch major(data) {
	case majorUint, majorNint:
		var d int64
		if err := cose.DecMode().Unmarshal(data, &d); err != nil {
			return 0, fmt.Errorf("%w: key: %w", ErrMalformed, err)
		}
		if id, ok := mod.byDelta[d]; ok {
			return id, nil
		}
		return 0, fmt.Errorf("%w: delta SID %d in %s", ErrUnknownLeaf, d, mod.name)
	case majorTag:
		var t cbor.RawTag
		if err := cose.DecMode().Unmarshal(data, &t); err != nil {
			return 0, fmt.Errorf("%w: key: %w", ErrMalformed, err)
		}
		if t.Number != tagSID || major(t.Content) != majorUint {
			return 0, fmt.Errorf("%w: key tag %d is not an absolute SID", ErrMalformed, t.Number)
		}
		var sid uint64
		if err := cose.DecMode().Unmarshal(t.Content, &sid); err != nil {
			return 0, fmt.Errorf("%w: key: %w", ErrMalformed, err)
		}
		if sid > mod.sid && sid-mod.sid < 64 {
			if id, ok := mod.byDelta[int64(sid-mod.sid)]; ok {
				return id, nil
			}
		}
		return 0, fmt.Errorf("%w: SID %d in %s", ErrUnknownLeaf, sid, mod.name)
	case majorTstr:
		var name string
		if err := cose.DecMode().Unmarshal(data, &name); err != nil {
			return 0, fmt.Errorf("%w: key: %w", ErrMalformed, err)
		}
		if id, ok := mod.byName[name]; ok {
			return id, nil
		}
		return 0, fmt.Errorf("%w: %q in %s", ErrUnknownLeaf, name, mod.name)
	}
	return 0, fmt.Errorf("%w: container key of major type %d", ErrMalformed, major(data))
}

// voucherKey and requestKey decode container keys of their module, so that
// the strict decoder's duplicate detection sees two spellings of one leaf
// (say 1 and "assertion") as the duplicates they are.
type (
	voucherKey leafID
	requestKey leafID
)

// UnmarshalCBOR implements cbor.Unmarshaler.
func (k *voucherKey) UnmarshalCBOR(data []byte) error {
	id, err := decodeKey(data, voucherModule)
	*k = voucherKey(id)
	return err
}

// UnmarshalCBOR implements cbor.Unmarshaler.
func (k *requestKey) UnmarshalCBOR(data []byte) error {
	id, err := decodeKey(data, requestModule)
	*k = requestKey(id)
	return err
}

// Extension names one entry of the "extensions" leaf-list: an extension
// module by SID (CBOR with SIDs) or by name. Exactly one is set.
//
//	leaf-list extensions { type union { type uint64; type string; } }
type Extension struct {
	SID  uint64
	Name string
}

// body holds every leaf of both modules; Voucher and Request copy in and
// out of it. Absent leaves are zero: nil slices and pointers, empty strings,
// zero times.
type body struct {
	assertion                           *Assertion
	createdOn                           time.Time
	revocationChecks                    *bool
	expiresOn                           time.Time
	idevidIssuer                        []byte
	lastRenewalDate                     time.Time
	nonce                               []byte
	pinnedDomainCert                    []byte
	pinnedDomainPubK                    []byte
	pinnedDomainPubKSHA256              []byte
	serialNumber                        string
	additionalConfigurationURL          string
	estDomain                           string
	manufacturerProprietary             []byte
	extensions                          []Extension
	priorSignedVoucherRequest           []byte
	proximityRegistrarCert              []byte
	proximityRegistrarPubKSHA256        []byte
	proximityRegistrarPubK              []byte
	agentProvidedProximityRegistrarCert []byte
	agentSignCert                       []byte
	agentSignedData                     []byte
}

// binaryLeaf returns the field of a binary leaf.
func (b *body) binaryLeaf(id leafID) *[]byte {
	switch id {
	case leafIDevIDIssuer:
		return &b.idevidIssuer
	case leafNonce:
		return &b.nonce
	case leafPinnedDomainCert:
		return &b.pinnedDomainCert
	case leafPinnedDomainPubK:
		return &b.pinnedDomainPubK
	case leafPinnedDomainPubKSHA256:
		return &b.pinnedDomainPubKSHA256
	case leafManufacturerProprietary:
		return &b.manufacturerProprietary
	case leafPriorSignedVoucherRequest:
		return &b.priorSignedVoucherRequest
	case leafProximityRegistrarCert:
		return &b.proximityRegistrarCert
	case leafProximityRegistrarPubKSHA256:
		return &b.proximityRegistrarPubKSHA256
	case leafProximityRegistrarPubK:
		return &b.proximityRegistrarPubK
	case leafAgentProvidedProximityRegistrarCert:
		return &b.agentProvidedProximityRegistrarCert
	case leafAgentSignCert:
		return &b.agentSignCert
	case leafAgentSignedData:
		return &b.agentSignedData
	}
	return nil
}

// dateLeaf returns the field of a yang:date-and-time leaf.
func (b *body) dateLeaf(id leafID) *time.Time {
	switch id {
	case leafCreatedOn:
		return &b.createdOn
	case leafExpiresOn:
		return &b.expiresOn
	case leafLastRenewalDate:
		return &b.lastRenewalDate
	}
	return nil
}

// stringLeaf returns the field of a string or URI leaf.
func (b *body) stringLeaf(id leafID) *string {
	switch id {
	case leafSerialNumber:
		return &b.serialNumber
	case leafAdditionalConfigurationURL:
		return &b.additionalConfigurationURL
	case leafESTDomain:
		return &b.estDomain
	}
	return nil
}

// decodeBody decodes {SID or name: {leaf: value, ...}} of module mod.
func decodeBody(data []byte, mod *module) (*body, error) {
	var top map[any]cbor.RawMessage
	if err := cose.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(top) != 1 {
		return nil, fmt.Errorf("%w: top-level map has %d entries, want 1", ErrMalformed, len(top))
	}
	var container cbor.RawMessage
	for k, v := range top {
		switch k := k.(type) {
		case int64:
			if k >= 0 && uint64(k) == mod.sid {
				container = v
			}
		case string:
			if k == mod.name {
				container = v
			}
		}
		if container == nil {
			return nil, fmt.Errorf("%w: top-level key %v, want %d or %q", ErrMalformed, k, mod.sid, mod.name)
		}
	}
	if major(container) != majorMap {
		return nil, fmt.Errorf("%w: %s is not a map", ErrMalformed, mod.name)
	}

	leaves := map[leafID]cbor.RawMessage{}
	if mod == voucherModule {
		var m map[voucherKey]cbor.RawMessage
		if err := cose.DecMode().Unmarshal(container, &m); err != nil {
			return nil, wrapDecode(err)
		}
		for k, v := range m {
			leaves[leafID(k)] = v
		}
	} else {
		var m map[requestKey]cbor.RawMessage
		if err := cose.DecMode().Unmarshal(container, &m); err != nil {
			return nil, wrapDecode(err)
		}
		for k, v := range m {
			leaves[leafID(k)] = v
		}
	}

	b := &body{}
	for _, id := range allLeaves {
		raw, ok := leaves[id]
		if !ok {
			continue
		}
		if err := b.set(id, raw); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, leafNames[id], err)
		}
	}
	if err := b.check(mod); err != nil {
		return nil, err
	}
	return b, nil
}

// wrapDecode makes sure a container decoding error wraps ErrMalformed
// unless it already carries ErrUnknownLeaf.
func wrapDecode(err error) error {
	if isAny(err, ErrUnknownLeaf, ErrMalformed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// set decodes one leaf value, checking its CBOR type strictly (no tags, no
// null standing in for a value).
func (b *body) set(id leafID, raw cbor.RawMessage) error {
	dm := cose.DecMode()
	switch id {
	case leafAssertion:
		a, err := decodeAssertion(raw)
		if err != nil {
			return err
		}
		b.assertion = &a
		return nil
	case leafDomainCertRevocationChecks:
		var c bool
		switch {
		case bytes.Equal(raw, []byte{0xf4}):
			c = false
		case bytes.Equal(raw, []byte{0xf5}):
			c = true
		default:
			return fmt.Errorf("not a boolean")
		}
		b.revocationChecks = &c
		return nil
	case leafExtensions:
		return b.setExtensions(raw)
	}
	if p := b.dateLeaf(id); p != nil {
		s, err := decodeText(raw)
		if err != nil {
			return err
		}
		t, err := parseDate(s)
		if err != nil {
			return err
		}
		*p = t
		return nil
	}
	if p := b.stringLeaf(id); p != nil {
		s, err := decodeText(raw)
		if err != nil {
			return err
		}
		*p = s
		return nil
	}
	if p := b.binaryLeaf(id); p != nil {
		if major(raw) != majorBstr {
			return fmt.Errorf("not a byte string")
		}
		var v []byte
		if err := dm.Unmarshal(raw, &v); err != nil {
			return err
		}
		if v == nil {
			v = []byte{}
		}
		*p = v
		return nil
	}
	return fmt.Errorf("%w: leaf %d", ErrUnknownLeaf, id)
}

// decodeAssertion accepts the enum value (uint) or the enum name (tstr).
func decodeAssertion(raw cbor.RawMessage) (Assertion, error) {
	switch major(raw) {
	case majorUint:
		var v uint64
		if err := cose.DecMode().Unmarshal(raw, &v); err != nil {
			return 0, err
		}
		if v >= uint64(len(assertionNames)) {
			return 0, fmt.Errorf("unknown value %d", v)
		}
		return Assertion(v), nil
	case majorTstr:
		s, err := decodeText(raw)
		if err != nil {
			return 0, err
		}
		a, ok := parseAssertionName(s)
		if !ok {
			return 0, fmt.Errorf("unknown name %q", s)
		}
		return a, nil
	}
	return 0, fmt.Errorf("neither enum value nor name")
}

// decodeText decodes an untagged text string.
func decodeText(raw cbor.RawMessage) (string, error) {
	if major(raw) != majorTstr {
		return "", fmt.Errorf("not a text string")
	}
	var s string
	if err := cose.DecMode().Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// setExtensions decodes the extensions leaf-list: an array of SIDs (uint)
// or names (tstr).
func (b *body) setExtensions(raw cbor.RawMessage) error {
	if major(raw) != majorArray {
		return fmt.Errorf("not an array")
	}
	var items []cbor.RawMessage
	if err := cose.DecMode().Unmarshal(raw, &items); err != nil {
		return err
	}
	out := make([]Extension, 0, len(items))
	for i, it := range items {
		switch major(it) {
		case majorUint:
			var v uint64
			if err := cose.DecMode().Unmarshal(it, &v); err != nil {
				return err
			}
			out = append(out, Extension{SID: v})
		case majorTstr:
			s, err := decodeText(it)
			if err != nil {
				return err
			}
			out = append(out, Extension{Name: s})
		default:
			return fmt.Errorf("entry %d is neither SID nor name", i)
		}
	}
	b.extensions = out
	return nil
}

// dateRE is the yang:date-and-time pattern (RFC 9911 / RFC 6991
// ietf-yang-types), upper-case T and Z only.
var dateRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)

// parseDate parses a yang:date-and-time. Fractions beyond nanoseconds are
// rejected so that the value is exact.
func parseDate(s string) (time.Time, error) {
	if !dateRE.MatchString(s) {
		return time.Time{}, fmt.Errorf("%q is not a yang:date-and-time", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("%q is the zero time", s)
	}
	if _, err := formatDate(t); err != nil {
		return time.Time{}, fmt.Errorf("%q: %w", s, err)
	}
	return t.UTC(), nil
}

// formatDate formats t in UTC as yang:date-and-time with as many fraction
// digits as needed (none for whole seconds), e.g. "2022-12-06T20:04:15.754Z".
func formatDate(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("year %d outside 0000..9999", y)
	}
	return t.Format("2006-01-02T15:04:05.999999999Z07:00"), nil
}

// check applies the value rules shared by decoding and encoding: YANG
// lengths and mandatory leaves, non-empty values (so that "absent" has one
// representation), and which leaves the module holds.
func (b *body) check(mod *module) error {
	for _, id := range allLeaves {
		if _, ok := mod.deltas[id]; ok || !b.present(id) {
			continue
		}
		return fmt.Errorf("%w: %s is not a leaf of %s", ErrUnknownLeaf, leafNames[id], mod.name)
	}
	if b.assertion != nil && !b.assertion.valid() {
		return fmt.Errorf("%w: assertion %d", ErrMalformed, *b.assertion)
	}
	if b.serialNumber == "" {
		return fmt.Errorf("%w: serial-number", ErrMissingField)
	}
	if b.nonce != nil && (len(b.nonce) < 8 || len(b.nonce) > 32) {
		return fmt.Errorf("%w: nonce of %d bytes, want 8..32", ErrMalformed, len(b.nonce))
	}
	for _, id := range []leafID{leafPinnedDomainPubKSHA256, leafProximityRegistrarPubKSHA256} {
		if p := b.binaryLeaf(id); *p != nil && len(*p) != 32 {
			return fmt.Errorf("%w: %s of %d bytes, want 32", ErrMalformed, leafNames[id], len(*p))
		}
	}
	for _, id := range allLeaves {
		if p := b.binaryLeaf(id); p != nil && *p != nil && len(*p) == 0 {
			return fmt.Errorf("%w: empty %s", ErrMalformed, leafNames[id])
		}
	}
	if b.manufacturerProprietary != nil {
		if err := cose.DecMode().Wellformed(b.manufacturerProprietary); err != nil {
			return fmt.Errorf("%w: manufacturer-proprietary is not CBOR: %w", ErrMalformed, err)
		}
	}
	for _, id := range []leafID{leafAdditionalConfigurationURL, leafESTDomain} {
		if s := *b.stringLeaf(id); s != "" {
			u, err := url.Parse(s)
			if err != nil || u.Scheme == "" {
				return fmt.Errorf("%w: %s %q is not a URI", ErrMalformed, leafNames[id], s)
			}
		}
	}
	if b.extensions != nil && len(b.extensions) == 0 {
		return fmt.Errorf("%w: empty extensions", ErrMalformed)
	}
	seen := map[Extension]bool{}
	for _, e := range b.extensions {
		if (e.Name == "") == (e.SID == 0) {
			return fmt.Errorf("%w: extension must have exactly one of SID and name", ErrMalformed)
		}
		if seen[e] {
			return fmt.Errorf("%w: duplicate extension %v", ErrMalformed, e)
		}
		seen[e] = true
	}
	return nil
}

// present reports whether leaf id holds a value.
func (b *body) present(id leafID) bool {
	switch id {
	case leafAssertion:
		return b.assertion != nil
	case leafDomainCertRevocationChecks:
		return b.revocationChecks != nil
	case leafExtensions:
		return b.extensions != nil
	}
	if p := b.dateLeaf(id); p != nil {
		return !p.IsZero()
	}
	if p := b.stringLeaf(id); p != nil {
		return *p != ""
	}
	return *b.binaryLeaf(id) != nil
}

// encodeBody encodes b as {mod.sid: {delta: value, ...}} in Core
// Deterministic CBOR.
func encodeBody(b *body, mod *module) ([]byte, error) {
	if err := b.check(mod); err != nil {
		return nil, err
	}
	inner := make(map[int64]any, len(mod.deltas))
	for id, delta := range mod.deltas {
		if !b.present(id) {
			continue
		}
		switch id {
		case leafAssertion:
			inner[delta] = uint8(*b.assertion)
			continue
		case leafDomainCertRevocationChecks:
			inner[delta] = *b.revocationChecks
			continue
		case leafExtensions:
			list := make([]any, len(b.extensions))
			for i, e := range b.extensions {
				if e.Name != "" {
					list[i] = e.Name
				} else {
					list[i] = e.SID
				}
			}
			inner[delta] = list
			continue
		}
		if p := b.dateLeaf(id); p != nil {
			s, err := formatDate(*p)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, leafNames[id], err)
			}
			inner[delta] = s
			continue
		}
		if p := b.stringLeaf(id); p != nil {
			inner[delta] = *p
			continue
		}
		inner[delta] = *b.binaryLeaf(id)
	}
	return cose.Marshal(map[uint64]any{mod.sid: inner})
}

// isAny reports whether err wraps any of targets.
func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
