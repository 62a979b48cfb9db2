//go:build bluez && linux

package bluez

import (
	"testing"

	"go.uber.org/goleak"
	"tinygo.org/x/bluetooth"

	"github.com/tumbler-iot/tumbler/ble"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The onboarding UUIDs parse as 128-bit UUIDs and round-trip.
func TestUUIDs(t *testing.T) {
	for _, s := range []string{ble.ServiceUUID, ble.C1UUID, ble.C2UUID} {
		u, err := bluetooth.ParseUUID(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if u.String() != s {
			t.Fatalf("%s round-trips as %s", s, u.String())
		}
		if u.Is16Bit() {
			t.Fatalf("%s is a 16-bit UUID", s)
		}
	}
}
