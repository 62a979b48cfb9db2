// Package meshcop is the Thread Mesh Commissioning Protocol (MeshCoP) wire
// format as a Go border router needs it: the TLV codec (with extended TLVs
// and unknown TLVs carried through in order), the commissioner's messages
// (COMM_PET, COMM_KA, MGMT_COMMISSIONER_SET, RLY_RX/RLY_TX), Joiner IDs,
// the steering-data Bloom filter and the PSKc derivation.
//
// The Thread specification is for members only; the facts here come from
// the reference implementations, OpenThread and ot-commissioner, cited per
// declaration, and are checked against their test vectors (testdata/).
// Section numbers "Thread 1.4 §x" follow the references those sources
// make.
//
// Decoding is strict: a truncated TLV, a known TLV of a length its type
// does not allow, a known TLV that repeats and more than MaxTLVs TLVs are
// errors, where ot-commissioner drops bad TLVs silently. Nothing here
// touches a socket.
package meshcop
