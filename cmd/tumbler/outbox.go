package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/store"
)

func outboxCmd() *cobra.Command {
	var path, sink string
	var parked bool
	cmd := &cobra.Command{
		Use:   "outbox --config FILE [--parked] [--sink NAME]",
		Short: "Show upstream delivery: backlog per sink, and records parked by a sink",
		Long: `Read the gateway's outbox (safe while the gateway runs): for each upstream sink in
gateway.yaml, how many records wait and how old the oldest is; with --parked, the records
a sink refused permanently (e.g. a webhook answering 400) and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := gateway.Load(path)
			if err != nil {
				return err
			}
			s, err := store.OpenReadOnly(cmd.Context(), cfg.Path(cfg.Store))
			if err != nil {
				return err
			}
			defer s.Close()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer w.Flush()
			if parked {
				ps, err := s.ParkedRecords(cmd.Context(), sink, 0)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, "SINK\tSEQ\tPARKED AT\tREASON")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", p.Sink, p.Seq, p.At.UTC().Format(time.RFC3339), p.Reason)
				}
				return nil
			}
			fmt.Fprintln(w, "SINK\tBACKLOG\tOLDEST\tPARKED")
			for _, sc := range cfg.Upstream {
				if sink != "" && sc.Name != sink {
					continue
				}
				n, oldest, err := s.OutboxBacklog(cmd.Context(), sc.Name)
				if err != nil {
					return err
				}
				ps, err := s.ParkedRecords(cmd.Context(), sc.Name, 0)
				if err != nil {
					return err
				}
				age := "-"
				if !oldest.IsZero() {
					age = time.Since(oldest).Round(time.Second).String()
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", sc.Name, n, age, len(ps))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "gateway.yaml", "gateway configuration file")
	cmd.Flags().StringVar(&sink, "sink", "", "only this sink")
	cmd.Flags().BoolVar(&parked, "parked", false, "list parked records")
	return cmd
}
