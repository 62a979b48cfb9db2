// Package cose signs and verifies COSE_Sign1 messages (RFC 9052 §4.2) over
// strict, deterministic CBOR, and holds the CBOR encoding and decoding modes
// shared by Tumbler's wire packages.
//
// Encoding is Core Deterministic (RFC 8949 §4.2.1). Decoding is strict:
// inputs are bounded by MaxMessageSize before any byte is read, duplicate
// map keys and indefinite lengths are rejected, nesting and container sizes
// are bounded. A parsed Sign1 keeps the bytes it was given, and Verify works
// on the received protected header, never on a re-encoding.
//
// Cryptography comes from github.com/veraison/go-cose; CBOR from
// github.com/fxamacker/cbor/v2.
package cose
