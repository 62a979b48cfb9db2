package coap

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"golang.org/x/sync/errgroup"

	"github.com/tumbler-iot/tumbler/coap/internal/demux"
	"github.com/tumbler-iot/tumbler/coap/internal/msglayer"
	"github.com/tumbler-iot/tumbler/coap/internal/pionlog"
)

// cipherSuites are offered by the server and the client: CCM_8 is
// mandatory for CoAP (RFC 7252 §9.1.3.3, RFC 9148 §3); GCM and CCM as
// well-supported alternatives.
var cipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
}

// dtlsRecordOverhead is the DTLS 1.2 AEAD record expansion: header 13,
// explicit nonce 8, tag 16 (GCM, CCM; 8 for CCM_8).
const dtlsRecordOverhead = 13 + 8 + 16

// session is one DTLS association: the peer of its exchanges.
type session struct {
	id    string
	conn  *dtls.Conn
	addr  net.Addr
	chain []*x509.Certificate
}

func (s *session) Key() string         { return s.id }
func (s *session) Send(b []byte) error { _, err := s.conn.Write(b); return err }

// FlightIntervalHinter is implemented by a link (a net.PacketConn given to
// ServeDTLS) whose datagrams are delivered reliably but slowly, such as
// BTP over BLE: a DTLS flight can take longer to cross it than the usual
// 1 s retransmission interval, and a retransmission would only queue a
// copy behind the original. ServeDTLS then uses the link's interval.
type FlightIntervalHinter interface {
	DTLSFlightInterval() time.Duration
}

// ServeDTLS serves CoAP over DTLS 1.2 on pc until ctx is cancelled or
// Close is called, then returns nil. Clients must present a certificate
// chaining to DTLSConfig.ClientCAs. Datagrams from unknown addresses create
// state only if they are a ClientHello, and at most WithMaxPeers
// associations exist at a time. ServeDTLS owns pc and closes it.
func (s *Server) ServeDTLS(ctx context.Context, pc net.PacketConn) error {
	if s.cfg.dtls == nil {
		_ = pc.Close()
		return ErrNoDTLS
	}
	run, end, ok := s.begin(ctx)
	if !ok {
		_ = pc.Close()
		return nil
	}
	defer end()
	cfg := s.cfg.dtls
	lcfg, err := s.layerConfig(cfg.MTU, dtlsRecordOverhead+coapOverhead)
	if err != nil {
		_ = pc.Close()
		return err
	}
	layer := msglayer.New(lcfg, func(ctx context.Context, p *session, req, resp *pool.Message) {
		s.serveRequest(ctx, transportDTLS, Peer{Addr: p.addr, Chain: p.chain, Session: p.id}, req, resp)
	})
	d := demux.New(pc, demux.Config{
		MaxPeers: s.cfg.maxPeers,
		// A burst of joins (a building powering up) must not lose
		// ClientHellos to the backlog: each costs the pledge a 1 s flight
		// retransmission. Peers stay bounded by maxPeers.
		Backlog:     min(s.cfg.maxPeers, 1024),
		IdleTimeout: s.cfg.idleTimeout,
		MaxDatagram: maxDatagram,
		Accept:      demux.IsClientHello,
		Drop:        func(r demux.Reason) { s.metrics.drop(transportDTLS, string(r)) },
		Now:         s.cfg.now,
	})
	opts := s.dtlsServerOptions()
	if h, ok := pc.(FlightIntervalHinter); ok && h.DTLSFlightInterval() > 0 {
		opts = append(opts, dtls.WithFlightInterval(h.DTLSFlightInterval()))
	}
	l, err := dtls.NewListenerWithOptions(d, opts...)
	if err != nil {
		_ = d.Close()
		return fmt.Errorf("coap: DTLS listener: %w", err)
	}

	var sessions sync.WaitGroup
	defer sessions.Wait()
	g, gctx := errgroup.WithContext(run)
	g.Go(func() error {
		<-gctx.Done()
		_ = d.Close() // unblocks Serve, Accept and every session
		return nil
	})
	g.Go(d.Serve)
	g.Go(func() error {
		for {
			c, err := l.Accept()
			if err != nil {
				if gctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return nil
				}
				// A per-connection setup failure; the listener lives on.
				s.log.Debug().Err(err).Msg("DTLS accept")
				continue
			}
			conn, ok := c.(*dtls.Conn)
			if !ok {
				_ = c.Close()
				continue
			}
			sessions.Go(func() { s.serveSession(gctx, layer, conn) })
		}
	})
	g.Go(func() error {
		s.housekeep(gctx, layer.Expire)
		return nil
	})
	s.log.Info().Stringer("addr", pc.LocalAddr()).Msg("serving CoAP over DTLS")
	return g.Wait()
}

func (s *Server) dtlsServerOptions() []dtls.ServerOption {
	cfg := s.cfg.dtls
	opts := []dtls.ServerOption{
		dtls.WithCertificates(cfg.Certificate),
		dtls.WithClientCAs(cfg.ClientCAs),
		dtls.WithClientAuth(dtls.RequireAndVerifyClientCert),
		dtls.WithCipherSuites(cipherSuites...),
		dtls.WithMTU(cfg.MTU),
		dtls.WithLoggerFactory(pionlog.Factory{Log: s.log}),
	}
	if cfg.FlightInterval > 0 {
		opts = append(opts, dtls.WithFlightInterval(cfg.FlightInterval))
	}
	if verify := cfg.VerifyPeer; verify != nil {
		opts = append(opts, dtls.WithVerifyPeerCertificate(func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 {
				return errNoVerifiedChain
			}
			return verify(chains[0])
		}))
	}
	return opts
}

// serveSession runs the handshake and then the association's exchanges,
// one at a time, until the peer closes, idles out or the server stops.
func (s *Server) serveSession(ctx context.Context, layer *msglayer.Layer[*session], conn *dtls.Conn) {
	defer conn.Close()
	hctx, cancel := context.WithTimeout(ctx, s.cfg.dtls.HandshakeTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.metrics.handshakes.WithLabelValues("failed").Inc()
		if ctx.Err() == nil {
			s.reqLog.Info().Stringer("peer", conn.RemoteAddr()).Err(err).Msg("DTLS handshake failed")
		}
		return
	}
	state, _ := conn.ConnectionState()
	chain, err := parseChain(state.PeerCertificates)
	if err != nil {
		// The handshake verified these certificates; a parse failure here
		// is a bug, and the association must not be served without them.
		s.metrics.handshakes.WithLabelValues("failed").Inc()
		s.log.Error().Stringer("peer", conn.RemoteAddr()).Err(err).Msg("DTLS client chain")
		return
	}
	sess := &session{id: s.newSessionID(), conn: conn, addr: conn.RemoteAddr(), chain: chain}
	s.metrics.handshakes.WithLabelValues("ok").Inc()
	s.metrics.sessions.Inc()
	defer s.metrics.sessions.Dec()
	s.log.Debug().Stringer("peer", sess.addr).Str("session", sess.id).
		Str("subject", chain[0].Subject.String()).Msg("DTLS session established")

	buf := make([]byte, maxDatagram)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			var tmp *dtls.TemporaryError
			if errors.As(err, &tmp) {
				s.metrics.drop(transportDTLS, dropTooBig)
				continue
			}
			s.log.Debug().Str("session", sess.id).Err(err).Msg("DTLS session ended")
			return
		}
		res := layer.Receive(ctx, sess, buf[:n])
		s.metrics.account(transportDTLS, res)
		if res.Err != nil {
			s.log.Debug().Str("session", sess.id).Err(res.Err).Msg("DTLS send")
		}
	}
}

// parseChain parses the certificates a peer presented, leaf first.
func parseChain(raw [][]byte) ([]*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, errNoVerifiedChain
	}
	chain := make([]*x509.Certificate, 0, len(raw))
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	return chain, nil
}
