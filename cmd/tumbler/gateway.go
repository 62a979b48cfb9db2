package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/gateway"
)

func initCmd() *cobra.Command {
	var o gateway.InitOptions
	var dir string
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a domain CA, registrar key and certificate, and gateway.yaml",
		Long: `Create the key material of a new domain and a gateway configuration in DIR.
It refuses to overwrite anything. Add the manufacturer CAs whose devices may join
(--manufacturer-ca, repeatable) now or later in gateway.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			for i, m := range o.Manufacturers {
				abs, err := filepath.Abs(m)
				if err != nil {
					return err
				}
				if _, err := os.Stat(abs); err != nil {
					return fmt.Errorf("--manufacturer-ca: %w", err)
				}
				o.Manufacturers[i] = abs
			}
			if o.MASACA != "" {
				abs, err := filepath.Abs(o.MASACA)
				if err != nil {
					return err
				}
				o.MASACA = abs
			}
			path, err := gateway.Init(dir, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (the admin API token is admin.tokens[0] in it)\nrun it with: tumbler gateway --config %s\n", path, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory to create the domain in (required)")
	f.StringVar(&o.Domain, "domain", "", "domain name used in certificate subjects")
	f.StringVar(&o.ID, "id", "", "gateway id (default \"tumbler\")")
	f.StringArrayVar(&o.Manufacturers, "manufacturer-ca", nil, "PEM file of a trusted manufacturer CA (repeatable)")
	f.StringVar(&o.MASAURL, "masa-url", "", "MASA URL for IDevIDs without the MASA URL extension")
	f.StringVar(&o.MASACA, "masa-ca", "", "PEM file of the trust anchor for MASA TLS certificates (default: system roots)")
	f.StringVar(&o.Listen, "listen", "", "CoAPS address of the registrar (default [::]:5684)")
	f.StringVar(&o.AdminListen, "admin-listen", "", "admin API, metrics and health endpoint (default 127.0.0.1:8484)")
	return cmd
}

func gatewayCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "gateway --config FILE",
		Short: "Run the border-router gateway daemon",
		Long: `Run the border-router gateway daemon from gateway.yaml.

Pledges reach the registrar over every link the configuration turns on
(docs/links.md): CoAPS on registrar.listen; stateless join proxies elsewhere
on registrar.jpy_listen; this border router as a join proxy on
joinproxy.listen; Thread CCM joiners through the Border Agent at
thread.border_agent; BLE pledges through the BlueZ adapter ble.adapter,
which needs a build with -tags bluez (Linux).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := gateway.Load(path)
			if err != nil {
				return err
			}
			log := newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			gw, err := gateway.New(cmd.Context(), cfg, gateway.WithLogger(log))
			if err != nil {
				return err
			}
			defer gw.Close()
			log.Info().Str("id", cfg.ID).Str("policy", cfg.Registrar.Policy).Strs("links", links(cfg)).Msg("gateway starting")
			err = gw.Run(cmd.Context())
			log.Info().Msg("gateway stopped")
			return err
		},
	}
	cmd.Flags().StringVar(&path, "config", "gateway.yaml", "gateway configuration file")
	return cmd
}

// links names the pledge-facing links cfg turns on, for the start-up log.
func links(cfg gateway.Config) []string {
	l := []string{"coaps " + cfg.Registrar.Listen}
	if cfg.Registrar.JPYListen != "" {
		l = append(l, "jpy "+cfg.Registrar.JPYListen)
	}
	if cfg.JoinProxy.Listen != "" {
		l = append(l, "joinproxy ("+cfg.JoinProxy.Mode+") "+cfg.JoinProxy.Listen)
	}
	if cfg.Thread.BorderAgent != "" {
		l = append(l, "thread "+cfg.Thread.BorderAgent)
	}
	if cfg.BLE.Adapter != "" {
		l = append(l, "ble "+cfg.BLE.Adapter)
	}
	return l
}
