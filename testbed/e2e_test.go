package testbed

import (
	"context"
	"testing"
	"time"
)

func TestOnboardEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Motes: 5, Seed: 1, Dir: t.TempDir(), Artifacts: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Onboarded != 5 {
		t.Fatalf("onboarded %d/5: %+v", rep.Onboarded, rep.Failures)
	}
}
