// Package voucher implements the constrained voucher and voucher-request
// artifacts of cBRSKI (draft-ietf-anima-constrained-voucher-31) with the
// rfc8366bis YANG modules and SIDs: SID-keyed CBOR (RFC 9254) in
// COSE_Sign1 (media type application/voucher+cose, CF 836), the validation
// rules of the registrar, the MASA and the pledge, and the CBOR status
// telemetry of /vs and /es (RFC 8995 §5.7, §5.9.4).
//
// Decoding accepts delta SIDs, absolute SIDs (tag 47) and YANG names, mixed;
// it is strict about types, lengths and duplicate leaves (two spellings of
// one leaf are duplicates), and rejects keys outside the module. Encoding is
// always delta SIDs in Core Deterministic CBOR (RFC 8949 §4.2.1), dates as
// yang:date-and-time in UTC with only the fraction digits needed.
package voucher
