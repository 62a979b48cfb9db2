package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/rs/zerolog"
)

// UserPropertyRecordID is the MQTT 5 user property that carries the record
// id (hex SHA-256 of the COSE bytes): subscribers deduplicate on it.
const UserPropertyRecordID = "record-id"

// MQTT is an MQTT 5 sink (paho autopaho). Each record is one QoS 1 PUBLISH
// to <prefix>/<gateway-id>/<record-type>/<device-id-hex> with the COSE
// bytes as payload, Content Type ContentTypeCOSE and the user property
// record-id. A record is delivered only on a PUBACK with a reason code
// below 0x80; error codes are parked or retried (see PubackOutcome).
//
// Publishes are pipelined: up to MaxInflight await their PUBACK at once,
// but only one per device (see Sink.Deliver). The connection uses Clean
// Start 0 and a Session Expiry Interval, so publishes in flight when the
// link drops are resent on the same session after a reconnect; if the
// broker lost the session they are failed at once and retried from the
// outbox. A refused CONNECT (bad credentials) is logged at warn and
// retried with jittered backoff; nothing is acknowledged meanwhile. A
// broker that does not offer QoS 1 blocks the sink (the reason is logged):
// records are never downgraded to QoS 0.
//
// The sink works while its Run runs (the Deliverer runs it).
type MQTT struct {
	name      string
	cfg       MQTTConfig
	url       *url.URL
	tls       *tls.Config
	clientID  string
	topicBase string // "<prefix>/<gateway-id>/"
	reconnect Backoff
	log       zerolog.Logger
	recLog    zerolog.Logger

	running   atomic.Bool
	started   chan struct{} // closed once Run has created the connection manager
	maxPacket atomic.Uint32 // the broker's Maximum Packet Size, 0 if none
	wake      chan struct{}

	mu       sync.Mutex
	cm       *autopaho.ConnectionManager
	epoch    context.Context // cancelled when the broker loses the session
	endEpoch context.CancelCauseFunc
	lastErr  error // the last connect error, nil once connected
}

// NewMQTT returns an MQTT sink named name for the gateway gatewayID. cfg
// gets its defaults filled in; errors name the bad field.
func NewMQTT(name, gatewayID string, cfg MQTTConfig, opts ...SinkOption) (*MQTT, error) {
	if err := validName(name); err != nil {
		return nil, fieldErr("name", "%q %s", name, err)
	}
	if err := validTopicLevel(gatewayID); err != nil {
		return nil, fmt.Errorf("%w: gateway id %q %s", ErrConfig, gatewayID, err)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := newSinkOptions(opts)
	if err != nil {
		return nil, err
	}
	u, _ := mqttURL(cfg.URL) // validated above
	if u.Port() == "" {
		port := defaultMQTTPort
		if isTLSScheme(u.Scheme) {
			port = defaultMQTTSPort
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	u.Path = ""
	m := &MQTT{
		name:      name,
		cfg:       cfg,
		url:       u,
		clientID:  cfg.ClientID,
		topicBase: cfg.Prefix + "/" + gatewayID + "/",
		started:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
	}
	if m.clientID == "" {
		m.clientID = "tumbler-" + gatewayID + "-" + name
	}
	if isTLSScheme(u.Scheme) {
		if m.tls, err = cfg.TLS.load(u.Hostname()); err != nil {
			return nil, err
		}
	}
	if m.reconnect, err = NewBackoff(o.reconnBase, o.reconnMx, o.rand); err != nil {
		return nil, err
	}
	m.log = o.log.With().Str("component", "upstream").Str("sink", name).Str("broker", u.Redacted()).Logger()
	m.recLog = m.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
	m.epoch, m.endEpoch = context.WithCancelCause(context.Background())
	return m, nil
}

// Name returns the sink name.
func (m *MQTT) Name() string { return m.name }

// Topic returns the topic a record is published to.
func (m *MQTT) Topic(r Record) string { return m.topicBase + r.Type + "/" + r.DeviceHex() }

// Wake fires when a connection comes up, so that a Deliverer backing off
// after an outage retries at once.
func (m *MQTT) Wake() <-chan struct{} { return m.wake }

// Run connects and keeps the connection up until ctx is cancelled, then
// disconnects (normally, so the broker keeps the session) and returns nil.
// Run may be called once.
func (m *MQTT) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	sess := &lockedSession{SessionManager: state.NewInMemory()}
	// paho's own lines (several per PUBLISH at debug) get their own budget.
	pahoLog := m.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{m.url},
		TlsCfg:                        m.tls,
		KeepAlive:                     uint16(m.cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(m.cfg.SessionExpiry / time.Second),
		ReconnectBackoff:              m.reconnect.Delay, // attempt 0 (first try after a drop) waits 0
		ConnectTimeout:                m.cfg.ConnectTimeout,
		ConnectUsername:               m.cfg.Username,
		ConnectPassword:               []byte(m.cfg.Password),
		OnConnectionUp:                m.onUp,
		OnConnectionDown:              m.onDown,
		OnConnectError:                m.onConnectError,
		Debug:                         pahoLogger{l: pahoLog, level: zerolog.DebugLevel},
		Errors:                        pahoLogger{l: pahoLog, level: zerolog.WarnLevel},
		PahoDebug:                     pahoLogger{l: pahoLog, level: zerolog.DebugLevel},
		PahoErrors:                    pahoLogger{l: pahoLog, level: zerolog.WarnLevel},
		ClientConfig: paho.ClientConfig{
			ClientID:           m.clientID,
			Session:            sess,
			PacketTimeout:      m.cfg.PublishTimeout,
			OnServerDisconnect: m.onServerDisconnect,
			OnClientError:      m.onClientError,
		},
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: mqtt: %v", ErrConfig, err)
	}
	m.mu.Lock()
	m.cm = cm
	m.mu.Unlock()
	close(m.started)
	<-cm.Done()
	m.mu.Lock()
	m.endEpoch(ErrNotConnected) // nothing in flight can complete any more
	m.mu.Unlock()
	_ = sess.Close() // releases publishes still awaiting a PUBACK
	m.log.Info().Msg("mqtt sink stopped")
	return nil
}

// Deliver publishes recs pipelined, one in flight per device, and reports
// an outcome per record. It waits up to ConnectTimeout for a connection
// and returns ErrNotConnected (wrapping the last connect error) if none
// comes.
func (m *MQTT) Deliver(ctx context.Context, recs []Record) (Result, error) {
	res := Result{Outcomes: make([]Outcome, len(recs))}
	cm, epoch, err := m.connection(ctx)
	if err != nil {
		for i := range res.Outcomes {
			res.Outcomes[i] = Outcome{State: Retry, Reason: "not connected"}
		}
		return res, err
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(epoch, func() { cancel(context.Cause(epoch)) })
	defer stop()
	pipeline(pctx, recs, m.cfg.MaxInflight, res.Outcomes, func(ctx context.Context, r Record) Outcome {
		return m.publish(ctx, cm, r)
	})
	return res, nil
}

// connection waits (up to ConnectTimeout) for the link and returns the
// connection manager and the current session epoch.
func (m *MQTT) connection(ctx context.Context) (*autopaho.ConnectionManager, context.Context, error) {
	wctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout)
	defer cancel()
	select {
	case <-m.started:
	case <-wctx.Done():
		return nil, nil, fmt.Errorf("%w: sink not running", ErrNotConnected)
	}
	m.mu.Lock()
	cm := m.cm
	m.mu.Unlock()
	if err := cm.AwaitConnection(wctx); err != nil {
		m.mu.Lock()
		last := m.lastErr
		m.mu.Unlock()
		if last != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNotConnected, last)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	m.mu.Lock()
	epoch := m.epoch
	m.mu.Unlock()
	return cm, epoch, nil
}

// publish sends one record and waits for its PUBACK.
func (m *MQTT) publish(ctx context.Context, cm *autopaho.ConnectionManager, r Record) Outcome {
	if err := validTopicLevel(r.Type); err != nil {
		return Outcome{State: Parked, Reason: fmt.Sprintf("record type %q %s, so it cannot be a topic level", r.Type, err)}
	}
	p := &paho.Publish{
		QoS:     1,
		Topic:   m.Topic(r),
		Payload: r.COSE,
		Properties: &paho.PublishProperties{
			ContentType: ContentTypeCOSE,
			User:        paho.UserProperties{{Key: UserPropertyRecordID, Value: r.IDHex()}},
		},
	}
	if limit := m.maxPacket.Load(); limit > 0 {
		if n := packetSize(p); n > int64(limit) {
			return Outcome{State: Parked, Reason: fmt.Sprintf("PUBLISH of %d bytes exceeds the broker's Maximum Packet Size %d", n, limit)}
		}
	}
	resp, err := cm.Publish(ctx, p)
	if resp != nil && resp.ReasonCode >= 0x80 {
		reason := ""
		if resp.Properties != nil {
			reason = resp.Properties.ReasonString
		}
		o := PubackOutcome(resp.ReasonCode, reason)
		m.recLog.Debug().Uint64("seq", r.Seq).Str("outcome", o.State.String()).Str("reason", o.Reason).Msg("puback error")
		return o
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrSessionLost) {
			return Outcome{State: Retry, Reason: "broker lost the session before the PUBACK"}
		}
		return Outcome{State: Retry, Reason: "publish: " + err.Error()}
	}
	return Outcome{State: Delivered}
}

// PubackOutcome maps a PUBACK reason code (MQTT 5 §3.4.2.1) to an outcome.
// Codes below 0x80 are success (0x10 No matching subscribers included: the
// broker accepted the message). Errors that the same PUBLISH would meet
// again are parked: 0x87 Not authorized (the broker's ACL refuses this
// topic), 0x90 Topic Name invalid, 0x99 Payload format invalid. Errors
// that may pass later are retried: 0x80 Unspecified error, 0x83
// Implementation specific error, 0x91 Packet Identifier in use, 0x97 Quota
// exceeded, and any code this version does not know (retrying cannot lose
// a record; parking could).
func PubackOutcome(code byte, serverReason string) Outcome {
	if code < 0x80 {
		return Outcome{State: Delivered}
	}
	name := pubackName(code)
	reason := fmt.Sprintf("puback 0x%02x %s", code, name)
	if serverReason != "" {
		reason += ": " + clip(serverReason, 120)
	}
	switch code {
	case 0x87, 0x90, 0x99:
		return Outcome{State: Parked, Reason: reason}
	default:
		return Outcome{State: Retry, Reason: reason}
	}
}

func pubackName(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x90:
		return "topic name invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x99:
		return "payload format invalid"
	default:
		return "unknown reason code"
	}
}

// connackName names the CONNACK refusals an operator meets (MQTT 5
// §3.2.2.2).
func connackName(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8a:
		return "banned"
	case 0x8c:
		return "bad authentication method"
	case 0x9d:
		return "server moved"
	case 0x9f:
		return "connection rate exceeded"
	default:
		return "refused"
	}
}

func (m *MQTT) onUp(_ *autopaho.ConnectionManager, ca *paho.Connack) {
	var limit uint32
	if ca.Properties != nil && ca.Properties.MaximumPacketSize != nil {
		limit = *ca.Properties.MaximumPacketSize
	}
	m.maxPacket.Store(limit)
	m.mu.Lock()
	m.lastErr = nil
	if !ca.SessionPresent {
		// The broker has no session: in-flight publishes will never be
		// acknowledged. Fail them now rather than after PublishTimeout.
		m.endEpoch(ErrSessionLost)
		m.epoch, m.endEpoch = context.WithCancelCause(context.Background())
	}
	m.mu.Unlock()
	m.log.Info().Str("client_id", m.clientID).Bool("session_present", ca.SessionPresent).Msg("mqtt connected")
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *MQTT) onDown() bool {
	m.log.Info().Msg("mqtt disconnected; reconnecting")
	return true
}

func (m *MQTT) onConnectError(err error) {
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		m.log.Warn().Str("reason_code", fmt.Sprintf("0x%02x", ce.ReasonCode)).Str("reason", connackName(ce.ReasonCode)).
			Str("server_reason", ce.Reason).Msg("mqtt broker refused the connection; retrying with backoff")
		return
	}
	m.log.Warn().Err(err).Msg("mqtt connect failed; retrying with backoff")
}

func (m *MQTT) onServerDisconnect(d *paho.Disconnect) {
	reason := ""
	if d.Properties != nil {
		reason = d.Properties.ReasonString
	}
	m.log.Info().Str("reason_code", fmt.Sprintf("0x%02x", d.ReasonCode)).Str("server_reason", reason).Msg("mqtt broker sent DISCONNECT")
}

func (m *MQTT) onClientError(err error) {
	m.log.Debug().Err(err).Msg("mqtt connection error")
}

// packetSize is the encoded size of a PUBLISH.
func packetSize(p *paho.Publish) int64 {
	var c countWriter
	_, _ = p.Packet().WriteTo(&c)
	return int64(c)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// pahoLogger adapts zerolog to paho's log.Logger.
type pahoLogger struct {
	l     zerolog.Logger
	level zerolog.Level
}

func (p pahoLogger) Println(v ...any) {
	if e := p.l.WithLevel(p.level); e.Enabled() {
		e.Str("from", "paho").Msg(fmt.Sprint(v...))
	}
}

func (p pahoLogger) Printf(format string, v ...any) {
	if e := p.l.WithLevel(p.level); e.Enabled() {
		e.Str("from", "paho").Msgf(format, v...)
	}
}

// clip shortens s to at most n bytes of printable ASCII, for log lines and
// park reasons that echo a peer's text.
func clip(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	space := false
	for i := 0; i < len(s) && len(b) < n; i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			space = len(b) > 0
			continue
		}
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		if space {
			b = append(b, ' ')
			space = false
			if len(b) == n {
				break
			}
		}
		b = append(b, c)
	}
	return string(b)
}
