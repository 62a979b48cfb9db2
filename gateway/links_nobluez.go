//go:build !(bluez && linux)

package gateway

import (
	"errors"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/ble"
)

// bluezBuilt reports whether ble.adapter can be served: without the build
// tag bluez (or off Linux) there is no BlueZ backend, and Validate refuses
// a configured adapter.
const bluezBuilt = false

// errNoBlueZ is what openAdapter returns in this build; Validate catches
// the configuration first.
var errNoBlueZ = errors.New("built without BlueZ: rebuild with -tags bluez (Linux only)")

func openAdapter(string, zerolog.Logger) (ble.LinkSource, error) { return nil, errNoBlueZ }
