package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tumbler-iot/tumbler/cose/transfer"
	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/ownership"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// deviceDefaultAPI is the admin API of a gateway on this machine.
const deviceDefaultAPI = "http://127.0.0.1:8484"

// deviceMaxFile bounds the files `tumbler device` reads (authorisations,
// orders, CA certificates).
const deviceMaxFile = 1 << 20

// deviceFlags are the flags every `tumbler device` command shares.
type deviceFlags struct {
	api     string
	token   string
	ca      string
	json    bool
	timeout time.Duration
}

func deviceCmd() *cobra.Command {
	f := &deviceFlags{}
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Administer devices through a gateway's admin API: list, show, expect, transfer, reset, decommission, delegate",
		Long: `Call the gateway's admin API (admin.listen in gateway.yaml). The API URL comes from
--api or TUMBLER_API (default ` + deviceDefaultAPI + `), the bearer token from --token or
TUMBLER_TOKEN (prefer the environment: command-line flags are visible to other users).
http:// is allowed only to a loopback address; use --ca to trust the gateway's certificate
for https. Output is a table, or the API's JSON with --json. A failed call prints the HTTP
status and the API's error and exits non-zero.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.api, "api", deviceEnv("TUMBLER_API", deviceDefaultAPI), "admin API URL (env TUMBLER_API)")
	pf.StringVar(&f.token, "token", "", "admin or delegation bearer token (default env TUMBLER_TOKEN)")
	pf.StringVar(&f.ca, "ca", "", "PEM file of trust anchors for an https API (default: the system roots)")
	pf.BoolVar(&f.json, "json", false, "print JSON instead of a table")
	pf.DurationVar(&f.timeout, "timeout", time.Minute, "bound on the API call")
	cmd.AddCommand(
		deviceListCmd(f), deviceShowCmd(f), deviceExpectCmd(f), deviceTransferCmd(f),
		deviceRepossessCmd(f), deviceResetCmd(f), deviceDecommissionCmd(f), deviceReadmitCmd(f), deviceObjectCmd(f),
		deviceDelegateCmd(f), deviceUndelegateCmd(f), deviceParkedCmd(f), deviceCRLCmd(f),
	)
	return cmd
}

func deviceListCmd(f *deviceFlags) *cobra.Command {
	var filter ownership.ListFilter
	cmd := &cobra.Command{
		Use:   "list [--state S] [--overdue] [--limit N]",
		Short: "List devices, newest change first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, "list devices", func(ctx context.Context, c *api.Client) error {
				list, err := c.ListDevices(ctx, filter)
				if err != nil {
					return err
				}
				if list == nil {
					list = []ownership.DeviceView{}
				}
				return f.print(cmd, list, func(w io.Writer) {
					fmt.Fprintln(w, "ID\tSERIAL\tSTATE\tCLASS\tLAST CHECK-IN\tDUE\tMISSED\tOVERDUE\tPENDING")
					for _, d := range list {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Serial, d.State, d.Class,
							deviceTimePtr(d.LastCheckin), deviceTimePtr(d.DueAt), d.Missed, deviceYes(d.Overdue), devicePending(d))
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&filter.State, "state", "", "only devices in this state")
	cmd.Flags().BoolVar(&filter.Overdue, "overdue", false, "only devices that missed a check-in")
	cmd.Flags().IntVar(&filter.Limit, "limit", 0, "at most this many devices (default: the gateway's, 1000)")
	return cmd
}

func deviceShowCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a device with its certificates, delegations and record chain",
		Long: `Show a device. An admin token may show any device; a delegation token only the
devices delegated to it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, "show "+args[0], func(ctx context.Context, c *api.Client) error {
				d, err := c.GetDevice(ctx, args[0])
				if err != nil {
					return err
				}
				return f.print(cmd, d, func(w io.Writer) { deviceDetail(w, d) })
			})
		},
	}
}

// devicePending is the operation waiting for the device, or an open
// repossession claim against it.
func devicePending(d ownership.DeviceView) string {
	if d.PendingAction == "" && d.Claim != nil {
		return "repossession claim (object before " + deviceTime(d.Claim.NoticeUntil) + ")"
	}
	return deviceDash(d.PendingAction)
}

// deviceDetail writes one device as labelled lines and three tables.
func deviceDetail(w io.Writer, d ownership.DeviceDetail) {
	for _, kv := range [][2]string{
		{"ID", d.ID},
		{"Serial", d.Serial},
		{"State", d.State},
		{"Class", d.Class},
		{"Created", deviceTime(d.CreatedAt)},
		{"Updated", deviceTime(d.UpdatedAt)},
		{"Last check-in", deviceTimePtr(d.LastCheckin)},
		{"Due", deviceTimePtr(d.DueAt)},
		{"Missed", fmt.Sprint(d.Missed)},
		{"Overdue", deviceYes(d.Overdue)},
		{"Pending", devicePending(d.DeviceView)},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
	}
	fmt.Fprintln(w, "\nCERTIFICATES")
	fmt.Fprintln(w, "SERIAL\tOP\tISSUED\tNOT AFTER\tREVOKED")
	for _, c := range d.Certificates {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Serial, c.Op, deviceTime(c.IssuedAt), deviceTime(c.NotAfter), deviceTimePtr(c.RevokedAt))
	}
	fmt.Fprintln(w, "\nDELEGATIONS")
	fmt.Fprintln(w, "ID\tSINK\tUNTIL\tENDED")
	for _, g := range d.Delegations {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", g.ID, g.Sink, deviceTime(g.Until), deviceTimePtr(g.Ended))
	}
	if len(d.Claims) > 0 {
		fmt.Fprintln(w, "\nREPOSSESSION CLAIMS")
		fmt.Fprintln(w, "ORDER\tNEW OWNER\tNOTICE UNTIL\tSTATUS\tREASON")
		for _, c := range d.Claims {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.OrderHash[:16], c.NewOwner[:16], deviceTime(c.NoticeUntil), c.Status, deviceDash(c.Reason))
		}
	}
	fmt.Fprintln(w, "\nRECORDS")
	fmt.Fprintln(w, "SEQ\tTYPE\tTIME\tID")
	for _, r := range d.Records {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", r.Seq, r.Type, deviceTime(r.Time), r.ID)
	}
}

func deviceExpectCmd(f *deviceFlags) *cobra.Command {
	var req ownership.ExpectRequest
	var authFile string
	cmd := &cobra.Command{
		Use:   "expect (--serial S | --idevid-sha256 H | --qr PAYLOAD | --authorization FILE) [--note N]",
		Short: "Register a device this gateway should accept (registrar policy \"expected\")",
		Long: `Register an expected device by its serial number, the SHA-256 of its IDevID, the QR
payload on its label, or the transfer authorisation its previous owner gave you (the file
'tumbler device transfer --out' writes, raw or base64); the enrollment is then recorded as
a transfer in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if authFile != "" {
				b, err := deviceReadCOSE(authFile)
				if err != nil {
					return fmt.Errorf("--authorization: %w", err)
				}
				req.Authorization = b
			}
			return f.run(cmd, "expect", func(ctx context.Context, c *api.Client) error {
				res, err := c.Expect(ctx, req)
				if err != nil {
					return err
				}
				return f.print(cmd, res, func(w io.Writer) {
					fmt.Fprintf(w, "expecting device %s\n", res.Serial)
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Serial, "serial", "", "the device's serial number")
	fl.StringVar(&req.IDevIDSHA256, "idevid-sha256", "", "SHA-256 of the device's IDevID certificate (hex)")
	fl.StringVar(&req.QR, "qr", "", "the onboarding payload of the device's QR label")
	fl.StringVar(&authFile, "authorization", "", "transfer authorisation file from the previous owner")
	fl.StringVar(&req.Note, "note", "", "a note kept with the registration")
	cmd.MarkFlagsOneRequired("serial", "idevid-sha256", "qr", "authorization")
	cmd.MarkFlagsMutuallyExclusive("serial", "idevid-sha256", "qr", "authorization")
	return cmd
}

func deviceTransferCmd(f *deviceFlags) *cobra.Command {
	var req ownership.TransferRequest
	var ca, notAfter, out string
	var valid time.Duration
	cmd := &cobra.Command{
		Use:   "transfer ID (--new-owner-ca PEM | --new-owner-spki-sha256 H) [--not-after T | --valid D] [--registrar URI] [--out FILE]",
		Short: "Hand a device to a new owner: sign a transfer authorisation",
		Long: `Sign a transfer authorisation for the new owner's domain CA (a PEM file, or the
SHA-256 of its SubjectPublicKeyInfo), register it with the MASA and tell the device to
re-bootstrap at its next check-in. The authorisation is valid until --not-after (RFC 3339)
or for --valid (default: 7 days, the gateway's). Give the file --out writes to the new
owner, who registers it with 'tumbler device expect --authorization FILE'. --registrar
tells the device where the new owner's registrar is (coaps://...).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ca != "" {
				pemText, err := deviceReadCA(ca)
				if err != nil {
					return fmt.Errorf("--new-owner-ca: %w", err)
				}
				req.NewOwnerCA = pemText
			}
			var err error
			if req.NotAfter, err = deviceDeadline("--not-after", notAfter, "--valid", valid); err != nil {
				return err
			}
			return f.run(cmd, "transfer "+args[0], func(ctx context.Context, c *api.Client) error {
				res, err := c.Transfer(ctx, args[0], req)
				if err != nil {
					return err
				}
				if out != "" {
					if err := os.WriteFile(out, res.Authorization, 0o600); err != nil {
						return fmt.Errorf("the authorisation was signed (hash %s) but not saved: %w", res.AuthorizationHash, err)
					}
				}
				return f.print(cmd, res, func(w io.Writer) {
					fmt.Fprintf(w, "Authorization hash:\t%s\n", res.AuthorizationHash)
					fmt.Fprintf(w, "Not after:\t%s\n", deviceTime(res.NotAfter))
					if out != "" {
						fmt.Fprintf(w, "Written to:\t%s\n", out)
					} else {
						fmt.Fprintf(w, "Authorization:\t%s\n", base64.StdEncoding.EncodeToString(res.Authorization))
					}
					fmt.Fprintln(w, "The device re-bootstraps at its next check-in; the transfer completes when the new owner has enrolled it.")
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&ca, "new-owner-ca", "", "the new owner's domain CA certificate (PEM file)")
	fl.StringVar(&req.NewOwnerSPKISHA256, "new-owner-spki-sha256", "", "SHA-256 of the new owner's CA SubjectPublicKeyInfo (hex)")
	fl.StringVar(&notAfter, "not-after", "", "authorisation expiry (RFC 3339)")
	fl.DurationVar(&valid, "valid", 0, "authorisation lifetime from now (e.g. 168h)")
	fl.StringVar(&req.Registrar, "registrar", "", "the new owner's registrar, told to the device (coaps://...)")
	fl.StringVar(&out, "out", "", "write the authorisation (COSE_Sign1) to this file")
	cmd.MarkFlagsOneRequired("new-owner-ca", "new-owner-spki-sha256")
	cmd.MarkFlagsMutuallyExclusive("new-owner-ca", "new-owner-spki-sha256")
	cmd.MarkFlagsMutuallyExclusive("not-after", "valid")
	return cmd
}

func deviceRepossessCmd(f *deviceFlags) *cobra.Command {
	var req ownership.RepossessRequest
	var order, qr string
	cmd := &cobra.Command{
		Use:   "repossess (--qr PAYLOAD | --serial S --qr-secret HEX) --order FILE",
		Short: "Claim a device whose owner is gone, with a recovery authority's order",
		Long: `Claim a device for this gateway's domain: --qr-secret is the secret on the device's
label (hex; only a proof derived from it leaves the gateway) and --order a repossession
order (COSE_Sign1 file, raw or base64) from a recovery authority the MASA trusts. The MASA
enforces a notice period; the device may be onboarded after it. --qr takes the whole
label payload (TB1:<serial>:<secret>) instead of --serial and --qr-secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if qr != "" {
				if req.Serial != "" || req.QRSecret != "" {
					return fmt.Errorf("--qr: give it instead of --serial and --qr-secret, not with them")
				}
				serial, secret, err := transfer.ParseLabel(qr)
				if err != nil {
					return fmt.Errorf("--qr: %w", err)
				}
				req.Serial, req.QRSecret = serial, hex.EncodeToString(secret)
			}
			if req.Serial == "" || req.QRSecret == "" {
				return fmt.Errorf("--serial and --qr-secret (or --qr) are required")
			}
			if _, err := hex.DecodeString(req.QRSecret); err != nil {
				return fmt.Errorf("--qr-secret: not hex: %w", err)
			}
			b, err := deviceReadCOSE(order)
			if err != nil {
				return fmt.Errorf("--order: %w", err)
			}
			req.Order = b
			return f.run(cmd, "repossess "+req.Serial, func(ctx context.Context, c *api.Client) error {
				res, err := c.Repossess(ctx, req)
				if err != nil {
					return err
				}
				return f.print(cmd, res, func(w io.Writer) {
					fmt.Fprintf(w, "repossession of %s accepted; the device may be onboarded after %s\n", req.Serial, deviceTime(res.NoticeUntil))
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Serial, "serial", "", "the device's serial number")
	fl.StringVar(&req.QRSecret, "qr-secret", "", "the secret on the device's label (hex)")
	fl.StringVar(&order, "order", "", "repossession order file from a recovery authority")
	fl.StringVar(&qr, "qr", "", "the device label's payload (TB1:<serial>:<secret hex>)")
	_ = cmd.MarkFlagRequired("order")
	return cmd
}

func deviceResetCmd(f *deviceFlags) *cobra.Command {
	var req ownership.ResetRequest
	cmd := &cobra.Command{
		Use:   "reset ID [--now] [--reason R]",
		Short: "Factory-reset a device at its next check-in (or --now)",
		Long: `Reset a device: its credentials are revoked, its OSCORE context deleted and a reset
record written, at its next check-in, or at once with --now (for a device that will never
check in again). A reset device may onboard again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, "reset "+args[0], func(ctx context.Context, c *api.Client) error {
				ack, err := c.Reset(ctx, args[0], req)
				if err != nil {
					return err
				}
				return f.print(cmd, ack, func(w io.Writer) {
					if ack.Pending {
						fmt.Fprintf(w, "reset of %s scheduled for its next check-in\n", ack.Device)
					} else {
						fmt.Fprintf(w, "%s reset\n", ack.Device)
					}
				})
			})
		},
	}
	cmd.Flags().BoolVar(&req.Immediate, "now", false, "reset now, without waiting for a check-in")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (kept in the record)")
	return cmd
}

func deviceDecommissionCmd(f *deviceFlags) *cobra.Command {
	var req ownership.DecommissionRequest
	cmd := &cobra.Command{
		Use:   "decommission ID [--reason R]",
		Short: "Revoke a device and refuse it until readmitted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, "decommission "+args[0], func(ctx context.Context, c *api.Client) error {
				ack, err := c.Decommission(ctx, args[0], req)
				if err != nil {
					return err
				}
				return f.print(cmd, ack, func(w io.Writer) {
					fmt.Fprintf(w, "%s decommissioned\n", ack.Device)
				})
			})
		},
	}
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (kept in the record)")
	return cmd
}

func deviceReadmitCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "readmit ID",
		Short: "Let a decommissioned device onboard again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, "readmit "+args[0], func(ctx context.Context, c *api.Client) error {
				ack, err := c.Readmit(ctx, args[0])
				if err != nil {
					return err
				}
				return f.print(cmd, ack, func(w io.Writer) {
					fmt.Fprintf(w, "%s readmitted\n", ack.Device)
				})
			})
		},
	}
}

func deviceObjectCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "object ID",
		Short: "Object, as the device's owner, to a repossession claim on it (during the MASA's notice period)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, "object "+args[0], func(ctx context.Context, c *api.Client) error {
				ack, err := c.Object(ctx, args[0])
				if err != nil {
					return err
				}
				return f.print(cmd, ack, func(w io.Writer) {
					fmt.Fprintf(w, "%s: objection registered with the MASA; the claim will not mature\n", ack.Device)
				})
			})
		},
	}
}

func deviceDelegateCmd(f *deviceFlags) *cobra.Command {
	var sinkURL, until, caFile string
	var span time.Duration
	cmd := &cobra.Command{
		Use:   "delegate ID --upstream URL [--ca FILE] (--until T | --for D)",
		Short: "Grant another domain the device's records and read access, for a time",
		Long: `Delegate a device: its records are also delivered to --upstream (mqtt://, mqtts://
or https://, as for 'tumbler testbed --upstream'; MQTT credentials may be in the URL) and
the delegate may read the device in the API with the token printed (shown once), until
--until (RFC 3339) or for --for (e.g. 720h). --ca gives the trust anchors of the
delegate's server when its certificate is not from a public CA (the PEM is sent to the
gateway; a delegation may not name files there).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sink, err := upstream.ParseSinkURL(sinkURL)
			if err != nil {
				return err // names the flag: "upstream: scheme ..."
			}
			t, err := deviceDeadline("--until", until, "--for", span)
			if err != nil {
				return err
			}
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
				switch {
				case sink.MQTT != nil:
					sink.MQTT.TLS.CA = string(ca)
				case sink.Webhook != nil:
					sink.Webhook.TLS.CA = string(ca)
				}
			}
			req := ownership.DelegateRequest{Upstream: sink, Until: t}
			return f.run(cmd, "delegate "+args[0], func(ctx context.Context, c *api.Client) error {
				res, err := c.Delegate(ctx, args[0], req)
				if err != nil {
					return err
				}
				return f.print(cmd, res, func(w io.Writer) {
					fmt.Fprintf(w, "Delegation:\t%s\n", res.ID)
					fmt.Fprintf(w, "Until:\t%s\n", deviceTime(res.Until))
					fmt.Fprintf(w, "Token:\t%s\n", res.Token)
					fmt.Fprintln(w, "The token is shown once: give it to the delegate.")
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sinkURL, "upstream", "", "where the delegate wants the records (mqtt[s]://... or https://...)")
	fl.StringVar(&caFile, "ca", "", "PEM trust anchors of the delegate's server (mqtts:// or https://)")
	fl.StringVar(&until, "until", "", "end of the delegation (RFC 3339)")
	fl.DurationVar(&span, "for", 0, "length of the delegation from now (e.g. 720h)")
	_ = cmd.MarkFlagRequired("upstream")
	cmd.MarkFlagsOneRequired("until", "for")
	cmd.MarkFlagsMutuallyExclusive("until", "for")
	return cmd
}

func deviceUndelegateCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "undelegate ID DELEGATION",
		Short: "End a delegation early",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, "undelegate "+args[0], func(ctx context.Context, c *api.Client) error {
				ack, err := c.EndDelegation(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return f.print(cmd, ack, func(w io.Writer) {
					fmt.Fprintf(w, "delegation %s of %s ended\n", ack.Delegation, ack.Device)
				})
			})
		},
	}
}

func deviceParkedCmd(f *deviceFlags) *cobra.Command {
	var sink string
	cmd := &cobra.Command{
		Use:   "parked [--sink S]",
		Short: "List records an upstream refused permanently",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, "parked records", func(ctx context.Context, c *api.Client) error {
				list, err := c.Parked(ctx, sink)
				if err != nil {
					return err
				}
				if list == nil {
					list = []ownership.ParkedView{}
				}
				return f.print(cmd, list, func(w io.Writer) {
					fmt.Fprintln(w, "SINK\tSEQ\tPARKED AT\tREASON")
					for _, p := range list {
						fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", p.Sink, p.Seq, deviceTime(p.At), p.Reason)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&sink, "sink", "", "only this upstream sink")
	return cmd
}

func deviceCRLCmd(f *deviceFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "crl --out FILE",
		Short: "Fetch the gateway's certificate revocation list (DER, signed by the domain CA)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			return f.run(cmd, "crl", func(ctx context.Context, c *api.Client) error {
				der, err := c.CRL(ctx)
				if err != nil {
					return err
				}
				crl, err := x509.ParseRevocationList(der)
				if err != nil {
					return fmt.Errorf("the gateway sent a malformed CRL: %w", err)
				}
				if err := os.WriteFile(out, der, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d revoked certificates, next update %s\n", out, len(crl.RevokedCertificateEntries), deviceTime(crl.NextUpdate))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the CRL (DER) to FILE")
	return cmd
}

// run makes a client from the shared flags and calls do with a context
// bounded by --timeout. A failure is prefixed with what was done.
func (f *deviceFlags) run(cmd *cobra.Command, what string, do func(context.Context, *api.Client) error) error {
	token := f.token
	if token == "" {
		token = os.Getenv("TUMBLER_TOKEN")
	}
	var opts []api.ClientOption
	if f.ca != "" {
		opts = append(opts, api.WithCAFile(f.ca))
	}
	c, err := api.NewClient(f.api, token, opts...)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	if err := do(ctx, c); err != nil {
		if token == "" && errors.Is(err, ownership.ErrUnauthorized) {
			err = fmt.Errorf("%w (no token: set TUMBLER_TOKEN or --token)", err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// print writes v as indented JSON with --json, else table's output
// aligned by a tabwriter.
func (f *deviceFlags) print(cmd *cobra.Command, v any, table func(io.Writer)) error {
	if f.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

// deviceDeadline is the time given by the RFC 3339 flag at, or now plus
// the duration flag span, or zero when neither is set.
func deviceDeadline(atFlag, at, spanFlag string, span time.Duration) (time.Time, error) {
	switch {
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %q is not an RFC 3339 time (e.g. 2026-05-01T00:00:00Z)", atFlag, at)
		}
		return t, nil
	case span < 0:
		return time.Time{}, fmt.Errorf("%s: %v is negative", spanFlag, span)
	case span > 0:
		return time.Now().Add(span).UTC().Truncate(time.Second), nil
	}
	return time.Time{}, nil
}

// deviceReadFile reads at most deviceMaxFile bytes of path.
func deviceReadFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, deviceMaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > deviceMaxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, deviceMaxFile)
	}
	return b, nil
}

// deviceReadCOSE reads a COSE_Sign1 file: raw CBOR (tag 18 or the bare
// array), or the same in base64.
func deviceReadCOSE(path string) ([]byte, error) {
	b, err := deviceReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && (b[0] == 0xd2 || b[0] == 0x84) { // tag 18 (COSE_Sign1), array(4)
		return b, nil
	}
	text := strings.Join(strings.Fields(string(b)), "")
	if d, err := base64.StdEncoding.DecodeString(text); err == nil && len(d) > 0 && (d[0] == 0xd2 || d[0] == 0x84) {
		return d, nil
	}
	return nil, fmt.Errorf("%s: neither a COSE_Sign1 nor its base64", path)
}

// deviceReadCA returns the PEM text of a CA certificate: the flag's value
// itself if it is PEM, else the file it names.
func deviceReadCA(v string) (string, error) {
	b := []byte(v)
	if !strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		var err error
		if b, err = deviceReadFile(v); err != nil {
			return "", err
		}
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("no PEM CERTIFICATE in it")
	}
	return string(bytes.TrimSpace(b)) + "\n", nil
}

// deviceEnv is the environment variable k, or def when unset or empty.
func deviceEnv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// deviceTime formats t in UTC, RFC 3339; "-" for the zero time.
func deviceTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// deviceTimePtr is deviceTime for an optional time.
func deviceTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return deviceTime(*t)
}

func deviceYes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func deviceDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
