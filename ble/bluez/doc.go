// Package bluez is the gateway's BLE backend on Linux: a ble.LinkSource
// that scans with BlueZ (over D-Bus, through tinygo.org/x/bluetooth) for
// pledges advertising ble.ServiceUUID, connects to each, discovers C1 and
// C2 and hands the Central a btp.CentralLink.
//
// The code is compiled only on Linux with the build tag bluez, so the
// default build, go vet ./... and the tests need neither BlueZ nor D-Bus.
// BlueZ is reached over D-Bus in pure Go, so the tagged build needs no
// cgo either and cross-compiles to ARM routers:
//
//	CGO_ENABLED=0 GOARCH=arm64 go build -tags bluez ./cmd/tumbler
//
// See package ble's documentation for running it on a gateway.
package bluez
