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

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
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

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mcfgPath, err := masa.Init(filepath.Join(dir, "masa"), ln.Addr().String(), nil, time.Now())
	if err != nil {
		ln.Close()
		return nil, err
	}
	mcfg, err := masa.LoadConfig(mcfgPath)
	if err != nil {
		ln.Close()
		return nil, err
	}
	m, tlsCert, err := masa.Open(mcfg, masa.WithLogger(o.Log))
	if err != nil {
		ln.Close()
		return nil, err
	}
	l.MASA = m
	l.goServe(func() error { return m.ServeTLS(ctx, ln, tlsCert) })

	mfr, _ := filepath.Abs(filepath.Join(dir, "masa", masa.FileCA))
	l.ConfigPath, err = gateway.Init(filepath.Join(dir, "gateway"), gateway.InitOptions{
		Domain: "Testbed Domain", ID: "testbed", Manufacturers: []string{mfr}, MASACA: mfr,
		Listen: "127.0.0.1:0",
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
	// Time may run fast (TimeScale): look for missed check-ins often.
	cfg.Checkin.Poll = 200 * time.Millisecond
	cfg.Upstream = o.Upstream
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
	ok = true
	return l, nil
}

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
	if l.MASA != nil {
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
