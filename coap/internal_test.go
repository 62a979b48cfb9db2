package coap

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

func TestBlockSizeForMTU(t *testing.T) {
	tests := []struct {
		name string
		room int
		want int
		szx  blockwise.SZX
	}{
		{"cBRSKI DTLS PMTU", DefaultDTLSMTU - dtlsRecordOverhead - coapOverhead, 512, blockwise.SZX512},
		{"IPv6 minimum MTU, plain CoAP", DefaultUDPMTU - coapOverhead, 1024, blockwise.SZX1024},
		{"small link", 100, 64, blockwise.SZX64},
		{"no room at all", -5, 16, blockwise.SZX16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := blockSizeFor(tc.room)
			if got != tc.want || szxOf(got) != tc.szx || int(szxOf(got).Size()) != got {
				t.Fatalf("blockSizeFor(%d) = %d (szx %v), want %d (%v)", tc.room, got, szxOf(got), tc.want, tc.szx)
			}
		})
	}
}

func TestExchangeLifetime(t *testing.T) {
	// RFC 7252 §4.8.2: 247 seconds with the default parameters.
	if got := exchangeLifetime(defaultTransmission); got != 247*time.Second {
		t.Fatalf("EXCHANGE_LIFETIME = %v, want 247s", got)
	}
	if DefaultExchangeLifetime != 247*time.Second {
		t.Fatalf("DefaultExchangeLifetime = %v", DefaultExchangeLifetime)
	}
}

func TestCodeString(t *testing.T) {
	tests := []struct {
		code codes.Code
		want string
	}{
		{codes.Content, "2.05"},
		{codes.Forbidden, "4.03"},
		{codes.InternalServerError, "5.00"},
		{codes.Empty, "0.00"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := codeString(tc.code); got != tc.want {
				t.Fatalf("codeString(%v) = %q", tc.code, got)
			}
		})
	}
}
