package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/testbed"
	"github.com/tumbler-iot/tumbler/testbed/mote"
)

func testbedCmd() *cobra.Command {
	var o testbed.Options
	var report, level string
	cmd := &cobra.Command{
		Use:   "testbed",
		Short: "Run a lab: MASA, gateway and simulated motes onboarding over loopback",
		Long: `Start a lab MASA and a gateway in a temporary directory, manufacture --motes
devices and onboard them concurrently with cBRSKI over loopback UDP. Prints a
summary, optionally writes a JSON report and per-mote artifacts, and exits
non-zero if any mote failed.

--thread, --ble and --ip add motes that join over simulated links into the
same registrar: a Thread mesh (with --hops and 6LoWPAN fragments; the Joiner
Router relays to the gateway's commissioner through a Border Agent), BLE (BTP
over GATT, ATT_MTU 23..247), and an IP link through a join proxy (half
stateful, half stateless JPY). --loss applies to the Thread and IP links; the
report adds per-link counts, latencies and retransmissions.

--scenario lifecycle runs two domains (A and B, two gateways, two owners)
sharing one MASA: every mote onboards to A and checks in; then motes are
transferred to B without missing a check-in, one is repossessed by B, one reset
by A's operator, one reset on the device, one decommissioned and readmitted,
one's records delegated to another upstream for a few seconds. The report
lists each step, the transfer time and missed check-ins, and both domains'
records are verified as 'tumbler record verify --chain' does. Exits non-zero
unless every step succeeded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = newLogger(os.Stderr, level, "console")
			if o.Scenario == testbed.ScenarioLifecycle && !cmd.Flags().Changed("motes") {
				o.Motes = 8
			}
			if o.Thread+o.BLE+o.IP > 0 && !cmd.Flags().Changed("motes") {
				o.Motes = 0 // only the link kinds asked for
			}
			var bar *progressbar.ProgressBar
			if isTerminal(os.Stderr) && o.Scenario == "" {
				bar = progressbar.NewOptions(o.Motes+o.Thread+o.BLE+o.IP, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetDescription("onboarding"), progressbar.OptionShowCount(),
					progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
				o.Progress = func(done, failed, total int) { bar.Set(done) }
			}
			rep, err := testbed.Run(cmd.Context(), o)
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			printSummary(cmd.OutOrStdout(), rep)
			if report != "" {
				if err := testbed.WriteReport(report, rep); err != nil {
					return err
				}
			}
			if rep.Failed > 0 || rep.Lifecycle != nil && !rep.Lifecycle.Completed {
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Motes, "motes", 10, "number of simulated motes (lifecycle: default 8, at least 6)")
	f.StringVar(&o.Scenario, "scenario", "", "run a scenario: lifecycle (two domains: transfer, repossession, reset, decommission, delegation)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed: names the devices and orders their start")
	f.IntVar(&o.Concurrency, "concurrency", 0, "motes onboarding at once (default: all)")
	f.StringVar(&report, "report", "", "write a JSON report to FILE")
	f.StringVar(&o.Artifacts, "artifacts", "", "write per-mote PVR, RVR, voucher and certificates under DIR")
	f.StringVar(&o.Dir, "dir", "", "keep the lab's files (CA keys, database) in DIR instead of a temporary directory")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after this long")
	f.IntVar(&o.Checkins, "checkins", 0, "check-in rounds per mote after onboarding (OSCORE)")
	f.Float64Var(&o.TimeScale, "time-scale", 7*24*3600, "run check-in time this many times faster (default: a week per second)")
	f.StringArrayVar(&o.Upstream, "upstream", nil, "deliver records to an upstream (mqtt://host:port, mqtts://..., https://...); repeatable")
	f.IntVar(&o.Thread, "thread", 0, "motes joining over a simulated Thread mesh (Joiner Router relay, commissioner)")
	f.IntVar(&o.BLE, "ble", 0, "motes joining over simulated BLE (BTP over GATT)")
	f.IntVar(&o.IP, "ip", 0, "motes joining over an IP link through a join proxy (half stateful, half stateless)")
	f.Float64Var(&o.Links.Loss, "loss", 0, "loss: per datagram on the IP link, per 802.15.4 frame transmission and hop on the Thread mesh")
	f.IntVar(&o.Links.Hops, "hops", 1, "Thread mesh hops from a mote to the border router")
	f.IntVar(&o.Links.MACAttempts, "mac-attempts", testbed.DefaultMACAttempts, "transmissions of a Thread frame before the MAC gives up (1: raw frame loss)")
	f.Float64Var(&o.Links.BLEDrop, "ble-drop", 0, "probability that a GATT operation ends a BLE link")
	f.StringVar(&level, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func printSummary(w io.Writer, r *testbed.Report) {
	if l := r.Lifecycle; l != nil {
		for _, s := range l.Steps {
			mark := "ok  "
			if !s.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "%s %-38s %-12s %8.1f ms  %s\n", mark, s.Step, s.Serial, s.Ms, s.Detail)
		}
		fmt.Fprintf(w, "transferred %d motes A→B: transfer time p50 %.0f ms, max %.0f ms (of which re-bootstrap p50 %.0f ms; old owner revoked within %.0f ms); missed check-ins %d\n",
			l.Transferred, l.TransferTimeP50Ms, l.TransferTimeMaxMs, l.RebootstrapP50Ms, l.TransferCompleteMaxMs, l.MissedCheckins)
		fmt.Fprintf(w, "records: A %d (%s), B %d (%s); delegate received %d\n", l.Records["a"], l.Verified["a"], l.Records["b"], l.Verified["b"], l.DelegatedRecords)
		fmt.Fprintf(w, "check-ins acked %d/%d; lifecycle completed: %v\n", r.CheckinsAcked, r.CheckinsSent, l.Completed)
		return
	}
	fmt.Fprintf(w, "onboarded %d/%d motes in %.2f s (%.0f/s), onboarding p50 %.1f ms, p99 %.1f ms, seed %d\n",
		r.Onboarded, r.Motes, r.DurationS, r.OnboardingsPerS, r.OnboardP50Ms, r.OnboardP99Ms, r.Seed)
	for _, k := range []string{"udp", "thread", "ble", "ip-jp", "ip-jpy"} {
		l := r.Links[k]
		if l == nil {
			continue
		}
		fmt.Fprintf(w, "  %-7s %3d/%-3d onboarded, p50 %7.1f ms, p99 %7.1f ms; %d datagrams, %d handshake retransmissions, %d reconnects; link dropped %d of %d\n",
			k, l.Onboarded, l.Motes, l.OnboardP50Ms, l.OnboardP99Ms, l.PledgeDatagrams, l.HandshakeRetransmissions, l.Reconnects, l.LinkDropped, l.LinkDatagrams)
	}
	for sink, n := range r.Delivered {
		fmt.Fprintf(w, "upstream %s: %d records delivered, %d parked\n", sink, n, r.Parked[sink])
	}
	if r.CheckinsSent > 0 {
		fmt.Fprintf(w, "check-ins acked %d/%d, p50 %.1f ms, p99 %.1f ms; %d records\n",
			r.CheckinsAcked, r.CheckinsSent, r.CheckinP50Ms, r.CheckinP99Ms, r.Records)
	}
	for i, f := range r.Failures {
		if i == 10 {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Failures)-10)
			break
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Serial, f.Error)
	}
}

func moteCmd() *cobra.Command {
	var dir, gw, registrar, level string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "mote --dir DIR [--gateway HOST:PORT | --registrar HOST:PORT]",
		Short: "Onboard one simulated device against a running gateway",
		Long: `Run the pledge side of cBRSKI for the device identity in DIR (as written by
'tumbler masa idevid'): discover the registrar through the gateway's CoAP port
(or use --registrar directly), onboard, and write ldevid.pem, ldevid.key and
domain-ca.pem into DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			id, err := mote.LoadIdentity(dir)
			if err != nil {
				return err
			}
			log := newLogger(os.Stderr, level, "console")
			p, err := mote.New(id, mote.Config{Log: log, Listen: func() (net.PacketConn, error) { return net.ListenPacket("udp", ":0") }})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel func()
				ctx, cancel = contextWithTimeout(ctx, timeout)
				defer cancel()
			}
			var addr net.Addr
			if registrar != "" {
				if addr, err = net.ResolveUDPAddr("udp", registrar); err != nil {
					return fmt.Errorf("--registrar: %w", err)
				}
			} else {
				disc, err := net.ResolveUDPAddr("udp", gw)
				if err != nil {
					return fmt.Errorf("--gateway: %w", err)
				}
				if addr, err = p.Discover(ctx, disc); err != nil {
					return err
				}
				log.Info().Str("registrar", addr.String()).Msg("discovered")
			}
			enr, t, err := p.Onboard(ctx, addr)
			if err != nil {
				return err
			}
			if err := enr.Save(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "onboarded %s in %v: LDevID serial %x, issuer %q; wrote %s/%s\n",
				p.Serial(), t.Total.Round(time.Millisecond), enr.LDevID.SerialNumber, enr.LDevID.Issuer.CommonName, dir, mote.FileLDevID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "device directory from 'tumbler masa idevid' (required)")
	f.StringVar(&gw, "gateway", "127.0.0.1:5683", "gateway CoAP address for discovery")
	f.StringVar(&registrar, "registrar", "", "registrar CoAPS address (skips discovery)")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}
