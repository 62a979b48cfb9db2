package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/pki"
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
	cmd.AddCommand(masaInitCmd(), masaIDevIDCmd(), masaAuthorityCmd(), masaOrderCmd())
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
			if err := pki.WriteNew(filepath.Join(out, fileLabel), []byte(m.Label(serial)+"\n"), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/{%s,%s,%s,%s} (MASA %s)\n", out, mote.FileIDevID, mote.FileIDevIDKey, mote.FileManufacturerCA, fileLabel, m.URL())
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "masa.yaml", "MASA configuration file")
	cmd.Flags().StringVar(&serial, "serial", "", "device serial number (required)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the device identity to (required)")
	return cmd
}

// fileLabel holds the device label's payload (its QR code): serial and
// the secret a repossession proves possession with.
const fileLabel = "label.txt"

func masaAuthorityCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "authority --out DIR",
		Short: "Create a recovery authority key (it signs repossession orders the MASA honours)",
		Long: `Write authority.key and authority.pub.pem into DIR. List authority.pub.pem under
recovery_authorities in masa.yaml; 'tumbler masa order' signs orders with authority.key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			key, err := pki.GenerateKey(nil)
			if err != nil {
				return err
			}
			keyPEM, err := pki.EncodeKey(key)
			if err != nil {
				return err
			}
			pub, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				return err
			}
			if err := pki.WriteNew(filepath.Join(out, "authority.key"), keyPEM, 0o600); err != nil {
				return err
			}
			if err := pki.WriteNew(filepath.Join(out, "authority.pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/authority.key and %s/authority.pub.pem\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the key pair to (required)")
	return cmd
}

func masaOrderCmd() *cobra.Command {
	var keyFile, serial, caFile, reason, out string
	cmd := &cobra.Command{
		Use:   "order --authority KEY --serial SN --new-owner-ca PEM --reason R --out FILE",
		Short: "Sign a repossession order: the device SN goes to the domain of the given CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ name, v string }{{"--authority", keyFile}, {"--serial", serial}, {"--new-owner-ca", caFile}, {"--reason", reason}, {"--out", out}} {
				if f.v == "" {
					return fmt.Errorf("%s is required", f.name)
				}
			}
			key, err := pki.LoadKey(keyFile)
			if err != nil {
				return fmt.Errorf("--authority: %w", err)
			}
			ca, err := pki.LoadCerts(caFile)
			if err != nil {
				return fmt.Errorf("--new-owner-ca: %w", err)
			}
			o, err := transfer.SignOrder(rand.Reader, key, &transfer.Order{Serial: serial, NewOwner: transfer.SPKIHash(ca[0]), IssuedAt: time.Now(), Reason: reason})
			if err != nil {
				return err
			}
			if err := pki.WriteNew(out, o, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s goes to the domain of %q\n", out, serial, ca[0].Subject.CommonName)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "authority", "", "the recovery authority's key (from 'tumbler masa authority')")
	fl.StringVar(&serial, "serial", "", "the device's serial number")
	fl.StringVar(&caFile, "new-owner-ca", "", "the new owner's domain CA certificate (PEM)")
	fl.StringVar(&reason, "reason", "", "why (court order, foreclosure, ...)")
	fl.StringVar(&out, "out", "", "write the order (COSE_Sign1) to FILE")
	return cmd
}
