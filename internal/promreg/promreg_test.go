package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A second registration of the same metric yields the first collector, so
// both instances count into what is exported.
func TestRegisterSharesTheExistingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	a, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	a.Inc()
	b.Inc()
	var m dto.Metric
	if err := a.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 2 {
		t.Fatalf("exported %v, want 2", got)
	}
	// The same name with another shape is an error.
	if _, err := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "other"})); err == nil {
		t.Fatal("a conflicting collector was accepted")
	}
	if c, err := Register[prometheus.Counter](nil, prometheus.NewCounter(opts)); err != nil || c == nil {
		t.Fatalf("nil registry: %v", err)
	}
}
