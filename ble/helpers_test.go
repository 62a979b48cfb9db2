package ble_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tumbler-iot/tumbler/ble"
	"github.com/tumbler-iot/tumbler/ble/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every blocking step of a test.
const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newSim(t testing.TB, opts ...sim.Option) *sim.Network {
	t.Helper()
	n, err := sim.NewNetwork(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// serveCentral runs a Central fed by n until the end of the test, and
// checks that Serve returned nil.
func serveCentral(t testing.TB, n *sim.Network, opts ...ble.Option) *ble.Central {
	t.Helper()
	c, err := ble.NewCentral(opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background(), n) }()
	t.Cleanup(func() {
		_ = c.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("Serve did not return after Close")
		}
	})
	return c
}

func pledge(t testing.TB, n *sim.Network, name string, opts ...ble.Option) *ble.PeripheralConn {
	t.Helper()
	pc, err := n.Pledge(testContext(t), name, opts...)
	if err != nil {
		t.Fatalf("pledge %s: %v", name, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantErr(t testing.TB, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("error %v, want %v", got, want)
	}
}
