package upstream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultSignatureTolerance is how far a Tumbler-Signature timestamp may be
// from the receiver's clock (the Standard Webhooks recommendation).
const DefaultSignatureTolerance = 5 * time.Minute

// Sign returns the Tumbler-Signature header value for a webhook body sent
// at t:
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>." || body)>
//
// The timestamp is inside the MAC, so a receiver that checks it against
// its clock (VerifySignature) bounds replays; the body is the exact bytes
// sent, so in the cose format the MAC also covers the record id (its
// SHA-256). The scheme follows Standard Webhooks in spirit (a timestamped
// HMAC-SHA256) with a header that versions the MAC: receivers accept any
// v1 entry, so a sender may list two during a secret rotation, and ignore
// keys they do not know.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifySignature checks a Tumbler-Signature header against body: one v1
// entry must be the HMAC of the body under secret (ErrSignature otherwise)
// and the timestamp must be within tolerance of now (ErrSignatureTime
// otherwise). tolerance must be positive. Receivers should also
// deduplicate on the Idempotency-Key.
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		return fmt.Errorf("%w: tolerance %v must be positive", ErrConfig, tolerance)
	}
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed entry %q", ErrSignature, clip(part, 40))
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: two timestamps", ErrSignature)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: v1 is not %d bytes of hex", ErrSignature, sha256.Size)
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: missing or malformed timestamp", ErrSignature)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrSignature)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return fmt.Errorf("%w: no v1 signature matches", ErrSignature)
	}
	if skew := now.Sub(time.Unix(sec, 0)).Abs(); skew > tolerance {
		return fmt.Errorf("%w: timestamp %d is %v from now", ErrSignatureTime, sec, skew)
	}
	return nil
}
