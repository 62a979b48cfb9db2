package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

func recordSubscribeCmd() *cobra.Command {
	var broker, topic, out, clientID string
	var count int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "subscribe --mqtt URL --out DIR",
		Short: "Receive records from an MQTT broker and save them for 'record verify'",
		Long: `Subscribe to Tumbler records on an MQTT 5 broker (QoS 1) and write each one to DIR
as NNNNNNNN-type.cose (sequence number first, so that 'tumbler record verify --chain DIR/*.cose'
takes them in order). A record delivered twice (at-least-once) is written once. Stops after
--count records, after --timeout, or on interrupt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if broker == "" || out == "" {
				return errors.New("--mqtt and --out are required")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			ctx, stop := context.WithCancel(ctx)
			defer stop()
			var mu sync.Mutex
			seen := map[string]bool{}
			var bad int
			err := upstream.Subscribe(ctx, broker, clientID, topic, func(m upstream.Message) {
				s, err := record.Parse(m.Payload)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || (m.RecordID != "" && m.RecordID != s.ID.String()) {
					bad++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: not a valid record (record-id %s): %v\n", m.Topic, m.RecordID, err)
					return
				}
				if seen[s.ID.String()] {
					return
				}
				seen[s.ID.String()] = true
				name := filepath.Join(out, fmt.Sprintf("%08d-%s.cose", s.Record.Seq, s.Record.Type))
				if err := os.WriteFile(name, m.Payload, 0o644); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
				}
				if count > 0 && len(seen) >= count {
					stop()
				}
			})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(cmd.OutOrStdout(), "%d records saved in %s", len(seen), out)
			if bad > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), ", %d invalid", bad)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			if count > 0 && len(seen) < count {
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&broker, "mqtt", "", "broker URL, e.g. mqtt://127.0.0.1:1883")
	f.StringVar(&topic, "topic", "tumbler/#", "topic filter")
	f.StringVar(&out, "out", "", "directory for the records")
	f.StringVar(&clientID, "client-id", "tumbler-record-subscribe", "MQTT client id (the broker keeps the session under it)")
	f.IntVar(&count, "count", 0, "stop after this many distinct records (exit 1 if fewer arrived)")
	f.DurationVar(&timeout, "timeout", 0, "stop after this long")
	return cmd
}
