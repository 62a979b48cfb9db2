// Package testbed runs Tumbler end to end in one process: a lab MASA and
// manufacturer CA, a real gateway, and simulated motes that run the real
// device-side protocols against it.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/gateway"
	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/upstream"
	"github.com/tumbler-iot/tumbler/testbed/masa"
)

// Lab is a MASA and a gateway listening on loopback.
type Lab struct {
	Dir     string
	MASA    *masa.MASA
	Gateway *gateway.Gateway
	// ConfigPath is the gateway.yaml the lab wrote.
	ConfigPath string
	// CoAP is the gateway's plain CoAP (discovery) address, CoAPS its
	// DTLS registrar address.
	CoAP, CoAPS net.Addr
	// Admin is the admin API's base URL, API a client of it with the
	// admin token.
	Admin string
	API   *api.Client

	ownMASA bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// LabOptions tune StartLab.
type LabOptions struct {
	Log zerolog.Logger
	// Policy is the registrar policy (default open).
	Policy string
	// GatewayOptions are passed to gateway.New.
	GatewayOptions []gateway.Option
	// Upstream are the gateway's upstream sinks.
	Upstream []upstream.SinkConfig
	// SharedMASA makes this lab's gateway use another lab's MASA (and
	// trust its manufacturer CA) instead of starting its own: two owners,
	// one manufacturer.
	SharedMASA *Lab
	// MASAConfig adjusts the MASA's configuration before it starts.
	MASAConfig func(*masa.Config)
	// Domain and ID name the gateway's domain and the gateway
	// (default "Testbed Domain", "testbed").
	Domain, ID string
	// Configure adjusts the gateway's configuration before it starts.
	Configure func(*gateway.Config)
}

// StartLab creates a MASA and a gateway under dir (which must be empty or
// absent) with `masa init` and `tumbler init`, and starts them on
// 127.0.0.1 with ephemeral ports.
func StartLab(ctx context.Context, dir string, o LabOptions) (*Lab, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Lab{Dir: dir, cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()

	masaDir := filepath.Join(dir, "masa")
	if o.SharedMASA != nil {
		l.MASA, masaDir = o.SharedMASA.MASA, o.SharedMASA.MASADir()
	} else if err := l.startMASA(ctx, masaDir, o); err != nil {
		return nil, err
	}
	if o.Domain == "" {
		o.Domain = "Testbed Domain"
	}
	if o.ID == "" {
		o.ID = "testbed"
	}
	mfr, _ := filepath.Abs(filepath.Join(masaDir, masa.FileCA))
	var err error
	l.ConfigPath, err = gateway.Init(filepath.Join(dir, "gateway"), gateway.InitOptions{
		Domain: o.Domain, ID: o.ID, Manufacturers: []string{mfr}, MASACA: mfr, MASAURL: l.MASA.URL(),
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
	})
	if err != nil {
		return nil, err
	}
	cfg, err := gateway.Load(l.ConfigPath)
	if err != nil {
		return nil, err
	}
	if o.Policy != "" {
		cfg.Registrar.Policy = o.Policy
	}
	// Time may run fast (TimeScale): look for missed check-ins often, and
	// for finished transfers.
	cfg.Checkin.Poll = 200 * time.Millisecond
	cfg.Ownership.TransferPoll = 200 * time.Millisecond
	cfg.Ownership.DelegationPoll = 200 * time.Millisecond
	cfg.Upstream = o.Upstream
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	gw, err := gateway.New(ctx, cfg, append([]gateway.Option{gateway.WithLogger(o.Log)}, o.GatewayOptions...)...)
	if err != nil {
		return nil, err
	}
	l.Gateway = gw
	secure, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	plain, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		secure.Close()
		return nil, err
	}
	l.CoAPS, l.CoAP = secure.LocalAddr(), plain.LocalAddr()
	l.goServe(func() error { defer secure.Close(); return gw.ServeDTLS(ctx, secure) })
	l.goServe(func() error { defer plain.Close(); return gw.ServeCoAP(ctx, plain) })
	l.goServe(func() error { return gw.RunServices(ctx) })
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.Admin = "http://" + admin.Addr().String()
	l.goServe(func() error { return gw.ServeAdmin(ctx, admin) })
	if len(cfg.Admin.Tokens) > 0 {
		if l.API, err = api.NewClient(l.Admin, cfg.Admin.Tokens[0]); err != nil {
			return nil, err
		}
	}
	ok = true
	return l, nil
}

// startMASA creates and starts the lab's own MASA in dir.
func (l *Lab) startMASA(ctx context.Context, dir string, o LabOptions) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mcfgPath, err := masa.Init(dir, ln.Addr().String(), nil, time.Now())
	if err != nil {
		ln.Close()
		return err
	}
	mcfg, err := masa.LoadConfig(mcfgPath)
	if err != nil {
		ln.Close()
		return err
	}
	if o.MASAConfig != nil {
		o.MASAConfig(&mcfg)
	}
	m, tlsCert, err := masa.Open(mcfg, masa.WithLogger(o.Log))
	if err != nil {
		ln.Close()
		return err
	}
	l.MASA, l.ownMASA = m, true
	l.goServe(func() error { return m.ServeTLS(ctx, ln, tlsCert) })
	return nil
}

// MASADir is the directory of the lab's MASA (its manufacturer CA).
func (l *Lab) MASADir() string { return filepath.Join(l.Dir, "masa") }

func (l *Lab) goServe(f func() error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
		}
	}()
}

// WaitDelivered waits until every upstream sink has delivered (or parked)
// everything committed so far, or ctx ends.
func (l *Lab) WaitDelivered(ctx context.Context, sinks []string) error {
	for {
		pending := 0
		for _, s := range sinks {
			n, _, err := l.Gateway.Store().OutboxBacklog(ctx, s)
			if err != nil {
				return err
			}
			pending += n
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: %d records still undelivered: %w", pending, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops everything and reports errors the servers returned.
func (l *Lab) Close() error {
	l.cancel()
	var errs []error
	if l.Gateway != nil {
		errs = append(errs, l.Gateway.Close())
	}
	l.wg.Wait()
	if l.API != nil {
		l.API.CloseIdleConnections()
	}
	if l.MASA != nil && l.ownMASA {
		errs = append(errs, l.MASA.Close())
	}
	l.mu.Lock()
	errs = append(errs, l.errs...)
	l.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}
