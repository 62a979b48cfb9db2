package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/cose/record"
)

func recordCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "record", Short: "Inspect and verify the gateway's signed records"}
	cmd.AddCommand(recordInspectCmd(), recordVerifyCmd(), recordSubscribeCmd())
	return cmd
}

func recordInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE|-",
		Short: "Show a record in CBOR diagnostic notation (or JSON with --json)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			if !asJSON {
				d, err := record.Diagnostic(data)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), d)
				return nil
			}
			s, err := record.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			j, err := record.JSON(s)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(j))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of diagnostic notation")
	return cmd
}

func recordVerifyCmd() *cobra.Command {
	var keyPath string
	var chain bool
	cmd := &cobra.Command{
		Use:   "verify --key PEM [--chain] FILES...",
		Short: "Verify records' signatures and, with --chain, their per-device chains and sequence order",
		Long: `Verify every record's signature with the gateway's public key (a PUBLIC KEY or
CERTIFICATE PEM), then with --chain check that sequence numbers increase and each
record names its device's previous record. Files are taken in name order (the
testbed's artifacts are named by sequence number). Exits non-zero naming the
first bad record.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if keyPath == "" {
				return errors.New("--key is required")
			}
			b, err := os.ReadFile(keyPath)
			if err != nil {
				return err
			}
			pub, err := record.LoadPublicKey(b)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyPath, err)
			}
			files = append([]string(nil), files...)
			sort.Strings(files)
			if err := record.VerifyFiles(pub, chain, files, nil); err != nil {
				return err
			}
			what := "signatures"
			if chain {
				what = "signatures and chains"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d records: %s OK\n", len(files), what)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "gateway record-signing public key or certificate (PEM)")
	cmd.Flags().BoolVar(&chain, "chain", false, "also verify chain linkage and sequence order")
	return cmd
}
