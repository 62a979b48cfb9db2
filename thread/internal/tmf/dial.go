package tmf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/dtls/v3"
)

// ErrHandshake wraps a failed DTLS handshake.
var ErrHandshake = errors.New("tmf: DTLS handshake failed")

// cipherSuites: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 is what a CCM Border
// Agent speaks (shared/spec/thread-ble.md §1.7; ot-commissioner
// src/library/dtls.cpp); the others are offered as the coap package does.
var cipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
}

// DTLS is the certificate side of a MeshCoP DTLS association in CCM: both
// ends present a certificate from the domain CA (Thread 1.4 CCM; the
// Border Agent's LDevID, the commissioner's domain certificate).
type DTLS struct {
	// Certificate is this end's chain (leaf first) and key.
	Certificate tls.Certificate
	// Roots verifies the peer: for a client the server's chain, for a
	// server the client's.
	Roots *x509.CertPool
	// MTU bounds handshake flights (default 1280).
	MTU int
	// HandshakeTimeout bounds the handshake (default 30 s).
	HandshakeTimeout time.Duration
	// FlightInterval is the first retransmission interval (pion's default
	// if zero).
	FlightInterval time.Duration
}

func (d *DTLS) check() error {
	if len(d.Certificate.Certificate) == 0 || d.Certificate.PrivateKey == nil {
		return fmt.Errorf("%w: DTLS certificate and key required", ErrRequest)
	}
	if d.Roots == nil {
		return fmt.Errorf("%w: DTLS roots required", ErrRequest)
	}
	if d.MTU == 0 {
		d.MTU = 1280
	}
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = 30 * time.Second
	}
	return nil
}

// Dial runs a DTLS client handshake with raddr over pc and starts a
// Session on it. The Session owns pc; a failed Dial closes it.
func Dial(ctx context.Context, pc net.PacketConn, raddr net.Addr, d DTLS, cfg Config) (*Session, error) {
	if err := d.check(); err != nil {
		_ = pc.Close()
		return nil, err
	}
	cert := d.Certificate
	opts := []dtls.ClientOption{
		dtls.WithCipherSuites(cipherSuites...),
		dtls.WithMTU(d.MTU),
		dtls.WithRootCAs(d.Roots),
		dtls.WithGetClientCertificate(func(*dtls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }),
	}
	if d.FlightInterval > 0 {
		opts = append(opts, dtls.WithFlightInterval(d.FlightInterval))
	}
	conn, err := dtls.ClientWithOptions(pc, raddr, opts...)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return handshake(ctx, conn, d, cfg)
}

// Accept runs a DTLS server handshake with the client at raddr over pc
// (a PacketConn that carries only that client's datagrams) and starts a
// Session on it. The client must present a certificate chaining to
// d.Roots. The Session owns pc; a failed Accept closes it.
func Accept(ctx context.Context, pc net.PacketConn, raddr net.Addr, d DTLS, cfg Config) (*Session, error) {
	if err := d.check(); err != nil {
		_ = pc.Close()
		return nil, err
	}
	opts := []dtls.ServerOption{
		dtls.WithCertificates(d.Certificate),
		dtls.WithCipherSuites(cipherSuites...),
		dtls.WithMTU(d.MTU),
		dtls.WithClientCAs(d.Roots),
		dtls.WithClientAuth(dtls.RequireAndVerifyClientCert),
	}
	if d.FlightInterval > 0 {
		opts = append(opts, dtls.WithFlightInterval(d.FlightInterval))
	}
	conn, err := dtls.ServerWithOptions(pc, raddr, opts...)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return handshake(ctx, conn, d, cfg)
}

func handshake(ctx context.Context, conn *dtls.Conn, d DTLS, cfg Config) (*Session, error) {
	hctx, cancel := context.WithTimeout(ctx, d.HandshakeTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w with %v: %w", ErrHandshake, conn.RemoteAddr(), err)
	}
	return New(conn, cfg)
}
