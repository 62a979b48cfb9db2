package oscore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"

	"github.com/tumbler-iot/tumbler/coap/oscore/internal/seqno"
	"github.com/tumbler-iot/tumbler/coap/oscore/internal/window"
)

// AEADAlgorithm is a COSE AEAD algorithm identifier (RFC 8613 §3.1).
type AEADAlgorithm int

// AESCCM16_64_128 is AES-CCM with a 128-bit key, 64-bit tag and 13-byte
// nonce: COSE algorithm 10, the mandatory and default AEAD (§3.1, §5).
const AESCCM16_64_128 AEADAlgorithm = 10

// HKDFAlgorithm identifies the HKDF of the Common Context (§3.1) by its COSE
// algorithm value.
type HKDFAlgorithm int

// HKDFSHA256 is HKDF with SHA-256, the default (§3.1), identified as COSE
// algorithm -10 (direct+HKDF-SHA-256), as libcoap and the ACE OSCORE profile do.
const HKDFSHA256 HKDFAlgorithm = -10

const (
	keyLen       = 16 // AES-CCM-16-64-128 key length
	nonceLen     = 13 // AES-CCM-16-64-128 nonce length = Common IV length
	tagLen       = 8  // AES-CCM-16-64-128 tag length
	maxIDLen     = MaxIDLen
	maxPIVLen    = 5         // §5.2, §6.1
	maxPlaintext = 1<<16 - 1 // CCM with a 13-byte nonce (L = 2) encrypts at most 2^16-1 bytes
	maxPayload   = maxPlaintext + tagLen
)

// MaxIDLen is the longest Sender ID, Recipient ID or 'kid' for
// AES-CCM-16-64-128: the nonce length (13) minus 6 (RFC 8613 §3.3, §5.2).
const MaxIDLen = 7

// Params are the pre-established inputs of a security context (RFC 8613
// §3.1, §3.2). Master Secret, Sender ID and Recipient ID are required; the
// others default.
type Params struct {
	// MasterSecret is the HKDF input keying material (§3.1, §12.3).
	MasterSecret []byte
	// MasterSalt is the HKDF salt; empty by default (§3.1).
	MasterSalt []byte
	// IDContext is the ID Context (§3.1, §5.1). An absent ID Context (CBOR
	// nil in the derivation) differs from an empty one (an empty bstr): set
	// HasIDContext with an empty IDContext for the latter. A non-empty
	// IDContext implies HasIDContext.
	IDContext    []byte
	HasIDContext bool
	// SenderID and RecipientID are at most MaxIDLen bytes; the empty string
	// is a valid ID (§3.3). They must differ.
	SenderID    []byte
	RecipientID []byte
	// AEAD defaults to AESCCM16_64_128, the only one supported.
	AEAD AEADAlgorithm
	// HKDF defaults to HKDFSHA256, the only one supported.
	HKDF HKDFAlgorithm
}

// SequenceStore persists Sender Sequence Numbers (RFC 8613 Appendix B.1.1).
// id is Context.StateID. Store must return only once n is durable; Load
// reports the last value stored, with ok false if none was.
type SequenceStore interface {
	Load(id string) (n uint64, ok bool, err error)
	Store(id string, n uint64) error
}

// Default Appendix B.1.1 parameters. K = 256 costs one durable write per
// 256 messages sent, a negligible rate even for a check-in flood, and wastes
// at most K + F of the 2^40 numbers per restart. With a Store that is
// durable when it returns, any F >= 1 is safe. F = K also tolerates one
// periodic mark that was acknowledged but lost (a write cache that never
// reached the disk): the last number used is then below SSN1 + 2K =
// SSN1 + K + F. The mark stored right after a restart must be durable: no
// F covers its loss, since two restarts from the same stored number start
// at the same number.
const (
	DefaultPersistInterval = 256
	DefaultPersistGap      = DefaultPersistInterval
	DefaultReplayWindow    = 32               // §3.2.2
	DefaultEchoLifetime    = 30 * time.Second // Appendix B.1.2, RFC 9175 §2.3
)

// ContextOption configures the mutable part of a Context: Sender Sequence
// Number (RFC 8613 §3.2.2, Appendix B.1.1), replay window (§7.4, Appendix
// B.1.2) and 'kid context' use (§5.1).
type ContextOption func(*contextConfig) error

type contextConfig struct {
	store          SequenceStore
	k, f           uint64
	start          uint64
	windowSize     int
	window         *WindowState
	echoRecovery   bool
	echoLifetime   time.Duration
	now            func() time.Time
	rand           io.Reader
	sendKIDContext bool
}

// WithSequenceStore persists the Sender Sequence Number in s (Appendix
// B.1.1): a number is stored before it is used whenever it reaches the
// previous stored number plus K, and a restarted context resumes at the
// stored number plus K plus F, storing that number before its first use.
func WithSequenceStore(s SequenceStore) ContextOption {
	return func(c *contextConfig) error {
		if s == nil {
			return fmt.Errorf("%w: nil SequenceStore", ErrInvalidParams)
		}
		c.store = s
		return nil
	}
}

// WithPersistInterval sets K and F of Appendix B.1.1 (defaults
// DefaultPersistInterval and DefaultPersistGap). F must be large enough that
// the last number used before a crash is below SSN1 + K + F.
func WithPersistInterval(k, f uint64) ContextOption {
	return func(c *contextConfig) error {
		if k == 0 || f == 0 || k > seqno.Max || f > seqno.Max {
			return fmt.Errorf("%w: K and F must be in 1..2^40-1", ErrInvalidParams)
		}
		c.k, c.f = k, f
		return nil
	}
}

// WithSenderSequence sets the first Sender Sequence Number (default 0,
// §3.2.2) when no SequenceStore holds one. It serves test vectors and
// migrations; reusing a number with the same keys breaks AES-CCM.
func WithSenderSequence(n uint64) ContextOption {
	return func(c *contextConfig) error {
		if n > seqno.Max {
			return fmt.Errorf("%w: sender sequence number above 2^40-1", ErrInvalidParams)
		}
		c.start = n
		return nil
	}
}

// WithReplayWindowSize sets the replay window size (default 32, §3.2.2;
// at most 64).
func WithReplayWindowSize(n int) ContextOption {
	return func(c *contextConfig) error {
		if n < 1 || n > window.MaxSize {
			return fmt.Errorf("%w: replay window size %d not in 1..%d", ErrInvalidParams, n, window.MaxSize)
		}
		c.windowSize = n
		return nil
	}
}

// WithReplayWindow restores a replay window persisted from an earlier run
// (§7.5 item 1). Use it only with a state that covers every request that was
// answered; otherwise use WithEchoRecovery.
func WithReplayWindow(s WindowState) ContextOption {
	return func(c *contextConfig) error {
		c.window = &s
		return nil
	}
}

// WithEchoRecovery marks the replay window as lost (Appendix B.1.2): the
// first request is answered with an OSCORE-protected 4.01 carrying an Echo
// option, and a request that returns the Echo value sets the lower limit of
// the window.
func WithEchoRecovery() ContextOption {
	return func(c *contextConfig) error {
		c.echoRecovery = true
		return nil
	}
}

// WithEchoLifetime sets how long an Echo value is accepted (default
// DefaultEchoLifetime).
func WithEchoLifetime(d time.Duration) ContextOption {
	return func(c *contextConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: Echo lifetime must be positive", ErrInvalidParams)
		}
		c.echoLifetime = d
		return nil
	}
}

// WithClock sets the clock for Echo expiry (default time.Now).
func WithClock(now func() time.Time) ContextOption {
	return func(c *contextConfig) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidParams)
		}
		c.now = now
		return nil
	}
}

// WithRand sets the randomness for Echo values (default crypto/rand).
func WithRand(r io.Reader) ContextOption {
	return func(c *contextConfig) error {
		if r == nil {
			return fmt.Errorf("%w: nil random source", ErrInvalidParams)
		}
		c.rand = r
		return nil
	}
}

// WithKIDContextInRequests makes requests carry the ID Context as 'kid
// context' (§5.1, Appendix C.6). The context must have an ID Context.
func WithKIDContextInRequests() ContextOption {
	return func(c *contextConfig) error {
		c.sendKIDContext = true
		return nil
	}
}

// Context is an OSCORE security context (RFC 8613 §3): the derived keys and
// Common IV, the Sender Sequence Number and the replay window. It is safe
// for concurrent use.
type Context struct {
	alg            AEADAlgorithm
	senderID       []byte
	recipientID    []byte
	idContext      []byte
	hasIDContext   bool
	sendKIDContext bool

	senderKey    [keyLen]byte
	recipientKey [keyLen]byte
	commonIV     [nonceLen]byte
	sealer       cipher.AEAD
	opener       cipher.AEAD

	stateID string

	sendMu sync.Mutex
	seq    *seqno.Counter

	recvMu    sync.Mutex
	window    window.Window
	needsEcho bool
	echo      echoState
}

// NewContext derives a security context from p (RFC 8613 §3.2).
func NewContext(p Params, opts ...ContextOption) (*Context, error) {
	cfg := contextConfig{
		k:            DefaultPersistInterval,
		f:            DefaultPersistGap,
		windowSize:   DefaultReplayWindow,
		echoLifetime: DefaultEchoLifetime,
		now:          time.Now,
		rand:         rand.Reader,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if p.AEAD == 0 {
		p.AEAD = AESCCM16_64_128
	}
	if p.HKDF == 0 {
		p.HKDF = HKDFSHA256
	}
	if p.AEAD != AESCCM16_64_128 {
		return nil, fmt.Errorf("%w: AEAD %d (only 10, AES-CCM-16-64-128)", ErrUnsupportedAlgorithm, p.AEAD)
	}
	if p.HKDF != HKDFSHA256 {
		return nil, fmt.Errorf("%w: HKDF %d (only HKDF SHA-256)", ErrUnsupportedAlgorithm, p.HKDF)
	}
	if len(p.MasterSecret) == 0 {
		return nil, fmt.Errorf("%w: empty Master Secret", ErrInvalidParams)
	}
	if len(p.SenderID) > maxIDLen {
		return nil, fmt.Errorf("%w: Sender ID: %w", ErrInvalidParams, ErrIDTooLong)
	}
	if len(p.RecipientID) > maxIDLen {
		return nil, fmt.Errorf("%w: Recipient ID: %w", ErrInvalidParams, ErrIDTooLong)
	}
	if bytes.Equal(p.SenderID, p.RecipientID) {
		return nil, fmt.Errorf("%w: Sender ID equals Recipient ID", ErrInvalidParams)
	}
	hasIDContext := p.HasIDContext || len(p.IDContext) > 0
	if cfg.sendKIDContext && !hasIDContext {
		return nil, fmt.Errorf("%w: kid context requested without an ID Context", ErrInvalidParams)
	}
	if cfg.sendKIDContext && len(p.IDContext) > 255 {
		return nil, fmt.Errorf("%w: ID Context longer than 255 bytes cannot be sent as kid context", ErrInvalidParams)
	}
	if cfg.window != nil && cfg.echoRecovery {
		return nil, fmt.Errorf("%w: WithReplayWindow and WithEchoRecovery exclude each other", ErrInvalidParams)
	}

	c := &Context{
		alg:            p.AEAD,
		senderID:       bytes.Clone(p.SenderID),
		recipientID:    bytes.Clone(p.RecipientID),
		hasIDContext:   hasIDContext,
		sendKIDContext: cfg.sendKIDContext,
		needsEcho:      cfg.echoRecovery,
		echo:           echoState{lifetime: cfg.echoLifetime, now: cfg.now, rand: cfg.rand},
	}
	if c.senderID == nil {
		c.senderID = []byte{}
	}
	if c.recipientID == nil {
		c.recipientID = []byte{}
	}
	if hasIDContext {
		c.idContext = bytes.Clone(p.IDContext)
		if c.idContext == nil {
			c.idContext = []byte{}
		}
	}
	if err := c.derive(p); err != nil {
		return nil, err
	}
	c.stateID = makeStateID(c)

	w, _ := window.New(cfg.windowSize)
	if cfg.window != nil {
		w.Set(window.State(*cfg.window))
	}
	c.window = w

	if cfg.store == nil {
		s, err := seqno.New(cfg.start)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
		}
		c.seq = s
	} else {
		store := cfg.store
		id := c.stateID
		last, ok, err := store.Load(id)
		if err != nil {
			return nil, fmt.Errorf("%w: load: %w", ErrSequenceStore, err)
		}
		s, err := seqno.Resume(last, ok, cfg.start, cfg.k, cfg.f, func(n uint64) error { return store.Store(id, n) })
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
		}
		c.seq = s
	}
	return c, nil
}

// derive computes Sender Key, Recipient Key and Common IV (§3.2.1):
// HKDF(salt = Master Salt, IKM = Master Secret, info, L).
func (c *Context) derive(p Params) error {
	kdf := func(id []byte, typ string, l int) ([]byte, error) {
		info := hkdfInfo(id, c.idContext, c.hasIDContext, c.alg, typ, l)
		return hkdf.Key(sha256.New, p.MasterSecret, p.MasterSalt, string(info), l)
	}
	sk, err := kdf(c.senderID, "Key", keyLen)
	if err != nil {
		return fmt.Errorf("%w: HKDF: %w", ErrInvalidParams, err)
	}
	rk, err := kdf(c.recipientID, "Key", keyLen)
	if err != nil {
		return fmt.Errorf("%w: HKDF: %w", ErrInvalidParams, err)
	}
	iv, err := kdf([]byte{}, "IV", nonceLen)
	if err != nil {
		return fmt.Errorf("%w: HKDF: %w", ErrInvalidParams, err)
	}
	copy(c.senderKey[:], sk)
	copy(c.recipientKey[:], rk)
	copy(c.commonIV[:], iv)
	if c.sealer, err = newAEAD(c.senderKey[:]); err != nil {
		return err
	}
	if c.opener, err = newAEAD(c.recipientKey[:]); err != nil {
		return err
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	a, err := ccm.NewCCM(b, tagLen, nonceLen)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	return a, nil
}

func makeStateID(c *Context) string {
	var b strings.Builder
	if c.hasIDContext {
		b.WriteString("c=")
		b.WriteString(hex.EncodeToString(c.idContext))
		b.WriteString(";")
	}
	b.WriteString("s=")
	b.WriteString(hex.EncodeToString(c.senderID))
	b.WriteString(";r=")
	b.WriteString(hex.EncodeToString(c.recipientID))
	return b.String()
}

// StateID identifies the context's mutable state (Sender Sequence Number,
// replay window) in a store: ID Context (when present), Sender ID and
// Recipient ID in hex, e.g. "c=37cbf3210017a2d3;s=;r=01".
func (c *Context) StateID() string { return c.stateID }

// SenderID returns a copy of the Sender ID (§3.1).
func (c *Context) SenderID() []byte { return bytes.Clone(c.senderID) }

// RecipientID returns a copy of the Recipient ID (§3.1).
func (c *Context) RecipientID() []byte { return bytes.Clone(c.recipientID) }

// IDContext returns a copy of the ID Context and whether there is one (§3.1).
func (c *Context) IDContext() ([]byte, bool) { return bytes.Clone(c.idContext), c.hasIDContext }

// SenderKey returns a copy of the derived Sender Key (§3.2.1).
func (c *Context) SenderKey() []byte { return bytes.Clone(c.senderKey[:]) }

// RecipientKey returns a copy of the derived Recipient Key (§3.2.1).
func (c *Context) RecipientKey() []byte { return bytes.Clone(c.recipientKey[:]) }

// CommonIV returns a copy of the derived Common IV (§3.2.1).
func (c *Context) CommonIV() []byte { return bytes.Clone(c.commonIV[:]) }

// SenderSequence returns the Sender Sequence Number the next Partial IV
// will carry (§3.2.2).
func (c *Context) SenderSequence() uint64 {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.seq.Peek()
}

// ReplayWindow returns a snapshot of the replay window (§7.4). While Echo
// recovery is pending (Appendix B.1.2) it reports ok false.
func (c *Context) ReplayWindow() (s WindowState, ok bool) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	return WindowState(c.window.State()), !c.needsEcho
}

// nextPIV allocates the next Sender Sequence Number and encodes it as a
// Partial IV (§7.2: read and increment atomically).
func (c *Context) nextPIV(dst *[maxPIVLen]byte) ([]byte, error) {
	c.sendMu.Lock()
	n, err := c.seq.Next()
	c.sendMu.Unlock()
	if err != nil {
		if errors.Is(err, seqno.ErrExhausted) {
			return nil, fmt.Errorf("%w (context %s)", ErrSequenceExhausted, c.stateID)
		}
		return nil, fmt.Errorf("%w: %w", ErrSequenceStore, err)
	}
	return encodePIV(dst, n), nil
}
