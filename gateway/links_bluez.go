//go:build bluez && linux

package gateway

import (
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/bluez"
)

// bluezBuilt reports whether ble.adapter can be served: this build has the
// BlueZ backend.
const bluezBuilt = true

// openAdapter enables the BlueZ controller id and returns its scanner as
// the Central's link source.
func openAdapter(id string, log zerolog.Logger) (ble.LinkSource, error) {
	return bluez.New(id, bluez.WithLogger(log))
}
