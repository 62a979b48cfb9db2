package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/testbed/masa"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

func masaCmd() *cobra.Command {
	var path, level string
	cmd := &cobra.Command{
		Use:   "masa --config FILE",
		Short: "Run the lab MASA (HTTPS) and manage its manufacturer CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := masa.LoadConfig(path)
			if err != nil {
				return err
			}
			log := newLogger(os.Stderr, level, "console")
			m, cert, err := masa.Open(cfg, masa.WithLogger(log))
			if err != nil {
				return err
			}
			defer m.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			log.Info().Str("listen", ln.Addr().String()).Str("url", m.URL()).Msg("MASA serving")
			return m.ServeTLS(cmd.Context(), ln, cert)
		},
	}
	cmd.Flags().StringVar(&path, "config", "masa.yaml", "MASA configuration file")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(masaInitCmd(), masaIDevIDCmd())
	return cmd
}

func masaInitCmd() *cobra.Command {
	var dir, listen string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a manufacturer CA, the MASA's TLS certificate and masa.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			path, err := masa.Init(dir, listen, hosts, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nrun it with: tumbler masa --config %s\n", path, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9443", "HTTPS address; also the MASA URL in IDevIDs")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "names and IPs for the TLS certificate (default: from --listen)")
	return cmd
}

func masaIDevIDCmd() *cobra.Command {
	var path, serial, out string
	cmd := &cobra.Command{
		Use:   "idevid --config FILE --serial SN --out DIR",
		Short: "Manufacture a device: write its IDevID, key and the manufacturer CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serial == "" {
				return fmt.Errorf("--serial is required")
			}
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			cfg, err := masa.LoadConfig(path)
			if err != nil {
				return err
			}
			m, _, err := masa.Open(cfg)
			if err != nil {
				return err
			}
			defer m.Close()
			cert, key, err := m.IssueIDevID(serial)
			if err != nil {
				return err
			}
			if err := mote.SaveIdentity(out, mote.Identity{Chain: []*x509.Certificate{cert}, Key: key, Manufacturer: m.CA()}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/{%s,%s,%s} (MASA %s)\n", out, mote.FileIDevID, mote.FileIDevIDKey, mote.FileManufacturerCA, m.URL())
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "masa.yaml", "MASA configuration file")
	cmd.Flags().StringVar(&serial, "serial", "", "device serial number (required)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the device identity to (required)")
	return cmd
}
