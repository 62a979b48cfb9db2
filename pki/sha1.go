package pki

import "crypto/sha1" //nolint:gosec // RFC 5280 §4.2.1.2 key identifier, not a security hash

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}
