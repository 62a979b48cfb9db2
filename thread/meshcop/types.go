package meshcop

import "fmt"

// Type is a MeshCoP TLV type number. The numbers are those of OpenThread's
// otMeshcopTlvType (include/openthread/dataset.h) and ot-commissioner's
// tlv::Type (src/library/tlv.hpp), which agree (shared/spec/thread-ble.md
// §1.5).
type Type uint8

// MeshCoP TLV types.
const (
	TypeChannel                  Type = 0  // channel page (1) + channel (2)
	TypePANID                    Type = 1  // 2
	TypeExtendedPANID            Type = 2  // 8
	TypeNetworkName              Type = 3  // 0..16, UTF-8
	TypePSKc                     Type = 4  // 16 (ot-commissioner accepts up to 16)
	TypeNetworkKey               Type = 5  // 16 ("Network Master Key" in older code)
	TypeNetworkKeySequence       Type = 6  // 4
	TypeMeshLocalPrefix          Type = 7  // 8
	TypeSteeringData             Type = 8  // 1..16, Bloom filter
	TypeBorderAgentLocator       Type = 9  // RLOC16
	TypeCommissionerID           Type = 10 // 0..64, string
	TypeCommissionerSessionID    Type = 11 // 2
	TypeSecurityPolicy           Type = 12 // 3 or 4
	TypeGet                      Type = 13 // list of TLV types
	TypeActiveTimestamp          Type = 14 // 8
	TypeCommissionerUDPPort      Type = 15 // 2
	TypeState                    Type = 16 // int8: Accept 1, Pending 0, Reject -1
	TypeJoinerDTLSEncapsulation  Type = 17 // joiner's UDP payload (DTLS records), extended
	TypeJoinerUDPPort            Type = 18 // 2: the joiner's UDP port
	TypeJoinerIID                Type = 19 // 8: the joiner's link-local interface identifier
	TypeJoinerRouterLocator      Type = 20 // 2: RLOC16 of the Joiner Router
	TypeJoinerRouterKEK          Type = 21 // 16
	TypeProvisioningURL          Type = 32 // 0..64
	TypeVendorName               Type = 33 // 0..32
	TypeVendorModel              Type = 34 // 0..32
	TypeVendorSWVersion          Type = 35 // 0..16
	TypeVendorData               Type = 36 // 0..64
	TypeVendorStackVersion       Type = 37 // 0..254
	TypeUDPEncapsulation         Type = 48 // source port, destination port, payload; extended
	TypeIPv6Address              Type = 49 // 16
	TypePendingTimestamp         Type = 51 // 8
	TypeDelayTimer               Type = 52 // 4
	TypeChannelMask              Type = 53 // 0..254
	TypeCount                    Type = 54 // 1
	TypePeriod                   Type = 55 // 2
	TypeScanDuration             Type = 56 // 2
	TypeEnergyList               Type = 57 // 0..254
	TypeSecureDissemination      Type = 58 // 0..254
	TypeDomainName               Type = 59 // 0..16 (CCM)
	TypeDomainPrefix             Type = 60 // any (CCM, reserved)
	TypeAESteeringData           Type = 61 // 1..16 (CCM Autonomous Enrollment)
	TypeNMKPSteeringData         Type = 62 // 1..16 (CCM Network Key Provisioning)
	TypeCommissionerToken        Type = 63 // COSE_Sign1 COM_TOK (CCM), extended
	TypeCommissionerSignature    Type = 64 // 0..254 (CCM)
	TypeAEUDPPort                Type = 65 // 2 (CCM)
	TypeNMKPUDPPort              Type = 66 // 2 (CCM)
	TypeTRIHostname              Type = 67 // 0..254 (CCM)
	TypeRegistrarIPv6Address     Type = 68 // 16 (CCM)
	TypeRegistrarHostname        Type = 69 // 0..254 (CCM)
	TypeCommissionerPENSignature Type = 70 // 0..254 (CCM)
	TypeDiscoveryRequest         Type = 128
	TypeDiscoveryResponse        Type = 129
)

// rule bounds the value length of a known TLV type. The bounds are those
// of ot-commissioner's Tlv::IsValid (src/library/tlv.cpp), except that the
// steering data types need at least one byte (OpenThread's SteeringData,
// src/core/meshcop/steering_data.hpp, kMinLength = 1) and PSKc is exactly
// 16 bytes (OpenThread's PskcTlv).
type rule struct {
	name     string
	min, max int
	// extended types are written with the 0xFF escape whatever their length,
	// as OpenThread and ot-commissioner do (ot-commissioner
	// src/library/tlv.cpp IsExtendedTlv; OpenThread joiner_router.cpp writes
	// the Joiner DTLS Encapsulation as an ExtendedTlv).
	extended bool
}

const maxExtended = 0xffff

var rules = map[Type]rule{
	TypeChannel:                  {"Channel", 3, 3, false},
	TypePANID:                    {"PAN ID", 2, 2, false},
	TypeExtendedPANID:            {"Extended PAN ID", 8, 8, false},
	TypeNetworkName:              {"Network Name", 0, 16, false},
	TypePSKc:                     {"PSKc", 16, 16, false},
	TypeNetworkKey:               {"Network Key", 16, 16, false},
	TypeNetworkKeySequence:       {"Network Key Sequence Counter", 4, 4, false},
	TypeMeshLocalPrefix:          {"Mesh-Local Prefix", 8, 8, false},
	TypeSteeringData:             {"Steering Data", 1, 16, false},
	TypeBorderAgentLocator:       {"Border Agent Locator", 2, 2, false},
	TypeCommissionerID:           {"Commissioner ID", 0, 64, false},
	TypeCommissionerSessionID:    {"Commissioner Session ID", 2, 2, false},
	TypeSecurityPolicy:           {"Security Policy", 3, 4, false},
	TypeGet:                      {"Get", 0, 254, false},
	TypeActiveTimestamp:          {"Active Timestamp", 8, 8, false},
	TypeCommissionerUDPPort:      {"Commissioner UDP Port", 2, 2, false},
	TypeState:                    {"State", 1, 1, false},
	TypeJoinerDTLSEncapsulation:  {"Joiner DTLS Encapsulation", 0, maxExtended, true},
	TypeJoinerUDPPort:            {"Joiner UDP Port", 2, 2, false},
	TypeJoinerIID:                {"Joiner IID", 8, 8, false},
	TypeJoinerRouterLocator:      {"Joiner Router Locator", 2, 2, false},
	TypeJoinerRouterKEK:          {"Joiner Router KEK", 16, 16, false},
	TypeProvisioningURL:          {"Provisioning URL", 0, 64, false},
	TypeVendorName:               {"Vendor Name", 0, 32, false},
	TypeVendorModel:              {"Vendor Model", 0, 32, false},
	TypeVendorSWVersion:          {"Vendor SW Version", 0, 16, false},
	TypeVendorData:               {"Vendor Data", 0, 64, false},
	TypeVendorStackVersion:       {"Vendor Stack Version", 0, 254, false},
	TypeUDPEncapsulation:         {"UDP Encapsulation", 4, maxExtended, true},
	TypeIPv6Address:              {"IPv6 Address", 16, 16, false},
	TypePendingTimestamp:         {"Pending Timestamp", 8, 8, false},
	TypeDelayTimer:               {"Delay Timer", 4, 4, false},
	TypeChannelMask:              {"Channel Mask", 0, 254, false},
	TypeCount:                    {"Count", 1, 1, false},
	TypePeriod:                   {"Period", 2, 2, false},
	TypeScanDuration:             {"Scan Duration", 2, 2, false},
	TypeEnergyList:               {"Energy List", 0, 254, false},
	TypeSecureDissemination:      {"Secure Dissemination", 0, 254, false},
	TypeDomainName:               {"Domain Name", 0, 16, false},
	TypeDomainPrefix:             {"Domain Prefix", 0, maxExtended, false},
	TypeAESteeringData:           {"AE Steering Data", 1, 16, false},
	TypeNMKPSteeringData:         {"NMKP Steering Data", 1, 16, false},
	TypeCommissionerToken:        {"Commissioner Token", 0, maxExtended, true},
	TypeCommissionerSignature:    {"Commissioner Signature", 0, 254, false},
	TypeAEUDPPort:                {"AE UDP Port", 2, 2, false},
	TypeNMKPUDPPort:              {"NMKP UDP Port", 2, 2, false},
	TypeTRIHostname:              {"TRI Hostname", 0, 254, false},
	TypeRegistrarIPv6Address:     {"Registrar IPv6 Address", 16, 16, false},
	TypeRegistrarHostname:        {"Registrar Hostname", 0, 254, false},
	TypeCommissionerPENSignature: {"Commissioner PEN Signature", 0, 254, false},
	TypeDiscoveryRequest:         {"Discovery Request", 2, 2, false},
	TypeDiscoveryResponse:        {"Discovery Response", 2, 2, false},
}

// Known reports whether t is a MeshCoP TLV type this package knows. Known
// types are length-checked and may appear once per message; unknown types
// are carried through unchanged and may repeat.
func (t Type) Known() bool {
	_, ok := rules[t]
	return ok
}

// Extended reports whether OpenThread writes TLVs of type t with the
// extended (0xFF + 16-bit) length whatever their length.
func (t Type) Extended() bool { return rules[t].extended }

// String names the type ("Joiner IID") or gives its number ("TLV 200").
func (t Type) String() string {
	if r, ok := rules[t]; ok {
		return r.name
	}
	return fmt.Sprintf("TLV %d", uint8(t))
}

// checkLength reports whether n is an allowed value length for t.
func checkLength(t Type, n int) error {
	if n > maxExtended {
		return fmt.Errorf("%w: %v value of %d bytes exceeds 65535", ErrLength, t, n)
	}
	r, ok := rules[t]
	if !ok {
		return nil
	}
	if n < r.min || n > r.max {
		if r.min == r.max {
			return fmt.Errorf("%w: %v is %d bytes, want %d", ErrLength, t, n, r.min)
		}
		return fmt.Errorf("%w: %v is %d bytes, want %d..%d", ErrLength, t, n, r.min, r.max)
	}
	return nil
}
