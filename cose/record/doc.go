// Package record makes, parses and verifies Tumbler's signed records: one
// COSE_Sign1 (RFC 9052 §4.2, ES256, kid protected) per event the gateway
// emits, its payload a deterministic CBOR map, records of one device
// hash-chained by the SHA-256 of the previous record's bytes. The format is
// defined in docs/records.cddl; this package quotes it.
//
// Making a record:
//
//	r := &record.Record{Device: id, Serial: sn, Time: now(), Seq: seq, Prev: prev}
//	if err := r.SetBody(&record.CheckInBody{...}); err != nil { ... }
//	data, err := record.Sign(rand, gatewayKey, r)
//	id := record.IDOf(data) // the idempotency key, and the next record's Prev
//
// Reading one:
//
//	s, err := record.Parse(data) // strict: one encoding per record
//	err = s.Verify(gatewayPub)   // kid and signature
//	var c record.CheckInBody
//	err = s.Record.DecodeBody(&c)
//
// A sequence of records (a store export, an upstream stream) is checked
// with VerifyChain or, record by record, with a Verifier: the gateway
// sequence number strictly increases, every device's first record has no
// predecessor and every later one names the previous record of the same
// device, and all records carry the same gateway kid.
//
// Decoding is strict and bounded: inputs over cose.MaxMessageSize are
// refused before decoding, nesting and container sizes are bounded, and a
// payload that is not in Core Deterministic Encoding (RFC 8949 §4.2.1) is
// rejected, so that re-encoding a parsed record reproduces its bytes. ES256
// signatures must be low-S, so the record id is not malleable either.
package record
