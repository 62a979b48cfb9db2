// Package promreg registers Prometheus collectors that several instances
// of a component may share (two check-in services on one registry): the
// second instance gets the collector the first registered, so what it
// counts is exported rather than lost.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or, if an equal collector
// is already registered, returns that one. A nil reg registers nothing.
// Any other registration error, or an existing collector of another type,
// is returned.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
		return c, fmt.Errorf("promreg: %w (the registered collector is a %T)", err, are.ExistingCollector)
	}
	return c, err
}
