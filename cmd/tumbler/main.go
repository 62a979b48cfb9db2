// Command tumbler is the Tumbler border-router gateway: the daemon, its
// setup, the lab MASA, the testbed and the tools around them. Each
// subcommand parses flags and calls a package.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// exitError carries an exit status without printing more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "tumbler",
		Short:         "Tumbler: an open border-router gateway for constrained IoT networks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(initCmd(), gatewayCmd(), masaCmd(), testbedCmd(), moteCmd(), recordCmd(), outboxCmd(), deviceCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "tumbler:", err)
		os.Exit(1)
	}
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
