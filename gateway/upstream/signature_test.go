package upstream

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignatureVerify(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	body := []byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26}
	at := time.Unix(1767225600, 0)
	good := Sign(secret, at, body)
	other := Sign([]byte("another-secret-16b"), at, body)
	tests := []struct {
		name    string
		header  string
		body    []byte
		secret  []byte
		now     time.Time
		wantErr error
	}{
		{name: "valid", header: good, body: body, secret: secret, now: at},
		{name: "valid within tolerance", header: good, body: body, secret: secret, now: at.Add(4 * time.Minute)},
		{name: "rotation: second v1 matches", header: other + "," + good[strings.Index(good, "v1="):], body: body, secret: secret, now: at},
		{name: "unknown key ignored", header: good + ",v2=abc", body: body, secret: secret, now: at},
		{name: "body changed", header: good, body: append([]byte{0}, body...), secret: secret, now: at, wantErr: ErrSignature},
		{name: "wrong secret", header: good, body: body, secret: []byte("wrong-secret-0123"), now: at, wantErr: ErrSignature},
		{name: "timestamp changed", header: strings.Replace(good, "t=1767225600", "t=1767225601", 1), body: body, secret: secret, now: at, wantErr: ErrSignature},
		{name: "too old", header: good, body: body, secret: secret, now: at.Add(6 * time.Minute), wantErr: ErrSignatureTime},
		{name: "from the future", header: good, body: body, secret: secret, now: at.Add(-6 * time.Minute), wantErr: ErrSignatureTime},
		{name: "empty", header: "", body: body, secret: secret, now: at, wantErr: ErrSignature},
		{name: "no timestamp", header: "v1=" + strings.Repeat("00", 32), body: body, secret: secret, now: at, wantErr: ErrSignature},
		{name: "no v1", header: "t=1767225600", body: body, secret: secret, now: at, wantErr: ErrSignature},
		{name: "short v1", header: "t=1767225600,v1=abcd", body: body, secret: secret, now: at, wantErr: ErrSignature},
		{name: "two timestamps", header: good + ",t=1", body: body, secret: secret, now: at, wantErr: ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.secret, tt.header, tt.body, tt.now, DefaultSignatureTolerance)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("VerifySignature = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := VerifySignature(secret, good, body, at, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("zero tolerance: err = %v, want ErrConfig", err)
	}
}
