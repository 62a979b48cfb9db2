package meshcop

import (
	"encoding/hex"
	"fmt"
)

// Steering data lengths (OpenThread src/core/meshcop/steering_data.hpp
// kMinLength, kMaxLength).
const (
	MinSteeringLength = 1
	MaxSteeringLength = 16
)

// SteeringData is the value of a Steering Data TLV: a Bloom filter over
// Joiner IDs with two hash functions, 1 to 16 bytes long. All bits set
// admits any joiner; all bits clear admits none (the leader's initial
// value, one zero byte).
//
// The bit for a Joiner ID is h mod (8*len) for h = CRC16-CCITT(id) and
// h = CRC16-ANSI(id), counted from the least significant bit of the last
// byte. OpenThread src/core/meshcop/steering_data.cpp
// (CalculateHashBitIndexes, UpdateBloomFilter, Contains); ot-commissioner
// src/library/openthread/bloom_filter.cpp.
type SteeringData []byte

// NewSteeringData returns an all-zero filter of n bytes (1..16).
func NewSteeringData(n int) (SteeringData, error) {
	if n < MinSteeringLength || n > MaxSteeringLength {
		return nil, fmt.Errorf("%w: steering data of %d bytes, want %d..%d", ErrLength, n, MinSteeringLength, MaxSteeringLength)
	}
	return make(SteeringData, n), nil
}

// AllowAll returns the one-byte filter 0xFF that admits every joiner
// (OpenThread SteeringData::SetToPermitAllJoiners).
func AllowAll() SteeringData { return SteeringData{0xff} }

// SteeringFor returns a 16-byte filter (ot-commissioner's
// kMaxSteeringDataLength) admitting the given joiners.
func SteeringFor(ids ...JoinerID) SteeringData {
	sd := make(SteeringData, MaxSteeringLength)
	for _, id := range ids {
		sd.Add(id)
	}
	return sd
}

// Valid reports whether sd has a length Thread allows.
func (sd SteeringData) Valid() bool {
	return len(sd) >= MinSteeringLength && len(sd) <= MaxSteeringLength
}

// bits returns the two filter bit indexes of id for a filter of n bytes.
func bits(id JoinerID, n int) [2]int {
	m := 8 * n
	return [2]int{int(crc16(polyCCITT, id[:])) % m, int(crc16(polyANSI, id[:])) % m}
}

// Add sets the bits of id. It does nothing on an invalid filter.
func (sd SteeringData) Add(id JoinerID) {
	if !sd.Valid() {
		return
	}
	for _, b := range bits(id, len(sd)) {
		sd[len(sd)-1-b/8] |= 1 << (b % 8)
	}
}

// Contains reports whether the filter admits id: both of its bits are set.
func (sd SteeringData) Contains(id JoinerID) bool {
	if !sd.Valid() {
		return false
	}
	for _, b := range bits(id, len(sd)) {
		if sd[len(sd)-1-b/8]&(1<<(b%8)) == 0 {
			return false
		}
	}
	return true
}

// AllowsAll reports whether every bit is set.
func (sd SteeringData) AllowsAll() bool { return sd.Valid() && sd.all(0xff) }

// Empty reports whether no bit is set: no joiner is admitted.
func (sd SteeringData) Empty() bool { return !sd.Valid() || sd.all(0) }

func (sd SteeringData) all(v byte) bool {
	for _, b := range sd {
		if b != v {
			return false
		}
	}
	return true
}

func (sd SteeringData) String() string { return hex.EncodeToString(sd) }

// CRC-16 polynomials of OpenThread src/core/common/crc.hpp
// (kCrc16CcittPolynomial, kCrc16AnsiPolynomial).
const (
	polyCCITT = 0x1021
	polyANSI  = 0x8005
)

// crc16 is OpenThread's CrcCalculator<uint16_t>: MSB first, initial value
// 0, no reflection, no final XOR (CRC-16/XMODEM for 0x1021, CRC-16/UMTS for
// 0x8005).
func crc16(poly uint16, data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ poly
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
