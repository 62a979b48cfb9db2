package joinproxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"
)

// A stateless join proxy keeps each pledge's address in the JPY header,
// sealed under a key only it holds ([JP] §"JPY Message Security": "a
// generic stateless Join Proxy SHOULD encrypt and integrity-protect the
// state data"; the Security Considerations recommend AES-CCM with a 64-bit
// tag). The registrar keys its DTLS association on the header, so the
// header of one pledge must stay the same from datagram to datagram: the
// sealing is deterministic. The nonce is synthetic (SIV-style): a PRF of
// the plaintext under a second key, carried in the header. Equal plaintexts
// give equal headers; different plaintexts give different nonces, so CCM
// never sees a nonce twice with different data.
//
//	header    = kid(1) | nonce(7) | AES-128-CCM_8(k_enc, nonce, plaintext, aad = kid)
//	nonce     = HMAC-SHA-256(k_nonce, kid | plaintext)[:7]
//	plaintext = form(1) | link(1) | address
//
// The 8-byte CCM tag is the integrity check; there is no sequence number or
// replay window, because a replayed header must keep working (it names the
// same DTLS association) and DTLS does its own replay protection ([JP]
// §"Example Format for JPY Header Data"). kid names the key generation so
// that a reply sealed under the previous key still opens after a rotation.
const (
	headerKeyIDLen = 1
	headerNonceLen = 7 // CCM's minimum: 15-7 = 8-byte length field
	headerTagLen   = 8 // 64-bit tag
	headerOverhead = headerKeyIDLen + headerNonceLen + headerTagLen
	headerKeyLen   = 16 // AES-128
)

// Address forms inside the plaintext.
const (
	formIPv4      = 0 // port(2) | IPv4(4)
	formIPv6Local = 1 // port(2) | IID(8) | zone: fe80::/64 elided ([JP] §"Example Format for JPY Header Data")
	formIPv6      = 2 // port(2) | IPv6(16) | zone
	formLink      = 3 // the address's String(): a simulated radio, a BLE or Thread relay
)

// MaxLinkAddr bounds the String() of a non-UDP pledge address that a
// stateless join proxy carries in its header (a UDP address's zone is
// bounded by maxZone).
const MaxLinkAddr = 64

// maxPlaintext is the largest header plaintext: form, link, and the
// longest address form, a link address (MaxLinkAddr; a UDP address with
// zone takes at most 2+16+maxZone = 34).
const maxPlaintext = 2 + MaxLinkAddr

// headerKey is one generation of header keys.
type headerKey struct {
	id    byte
	aead  cipher.AEAD
	nonce []byte // HMAC key for the synthetic nonce
}

func newHeaderKey(id byte, rand io.Reader) (*headerKey, error) {
	var k [2 * headerKeyLen]byte
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return nil, fmt.Errorf("joinproxy: header key: %w", err)
	}
	block, err := aes.NewCipher(k[:headerKeyLen])
	if err != nil {
		return nil, fmt.Errorf("joinproxy: header key: %w", err)
	}
	aead, err := ccm.NewCCM(block, headerTagLen, headerNonceLen)
	if err != nil {
		return nil, fmt.Errorf("joinproxy: header key: %w", err)
	}
	return &headerKey{id: id, aead: aead, nonce: append([]byte(nil), k[headerKeyLen:]...)}, nil
}

// seal appends the header for plaintext pt to dst.
func (k *headerKey) seal(dst, pt []byte) []byte {
	mac := hmac.New(sha256.New, k.nonce)
	mac.Write([]byte{k.id})
	mac.Write(pt)
	var sum [sha256.Size]byte
	nonce := mac.Sum(sum[:0])[:headerNonceLen]
	dst = append(dst, k.id)
	dst = append(dst, nonce...)
	return k.aead.Seal(dst, nonce, pt, []byte{k.id})
}

// open returns the plaintext of header h, sealed under k.
func (k *headerKey) open(h []byte) ([]byte, error) {
	nonce := h[headerKeyIDLen : headerKeyIDLen+headerNonceLen]
	pt, err := k.aead.Open(nil, nonce, h[headerKeyIDLen+headerNonceLen:], h[:headerKeyIDLen])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	return pt, nil
}

// keyring holds the current header key and the one before it, and
// replaces the current key every period (lazily, on use, by the injected
// clock). A header sealed under a key two generations old no longer opens.
type keyring struct {
	rand   io.Reader
	now    func() time.Time
	period time.Duration

	mu        sync.Mutex
	cur, prev *headerKey
	next      time.Time // when cur is replaced
	rotations uint64
}

func newKeyring(rand io.Reader, now func() time.Time, period time.Duration) (*keyring, error) {
	var id [1]byte
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return nil, fmt.Errorf("joinproxy: header key: %w", err)
	}
	k, err := newHeaderKey(id[0], rand)
	if err != nil {
		return nil, err
	}
	return &keyring{rand: rand, now: now, period: period, cur: k, next: now().Add(period)}, nil
}

// keys returns the current and previous keys (prev may be nil), rotating
// first if the period has passed.
func (r *keyring) keys() (cur, prev *headerKey, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !now.Before(r.next) {
		k, err := newHeaderKey(r.cur.id+1, r.rand)
		if err != nil {
			return nil, nil, err
		}
		if now.Before(r.next.Add(r.period)) {
			r.prev = r.cur
		} else {
			// Idle for more than a whole period: the current key is two
			// generations old by the time the new one takes over.
			r.prev = nil
		}
		r.cur = k
		r.next = now.Add(r.period)
		r.rotations++
	}
	return r.cur, r.prev, nil
}

// Rotations is how many times the key was replaced.
func (r *keyring) Rotations() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotations
}

// seal returns the sealed header for pledge address a on link.
func (r *keyring) seal(link int, a net.Addr) ([]byte, error) {
	var buf [maxPlaintext]byte
	pt, err := appendPledge(buf[:0], link, a)
	if err != nil {
		return nil, err
	}
	cur, _, err := r.keys()
	if err != nil {
		return nil, err
	}
	return cur.seal(make([]byte, 0, headerOverhead+len(pt)), pt), nil
}

// open authenticates header h and returns the link index and the pledge
// address it names; network is the Network() of a non-UDP address.
func (r *keyring) open(h []byte, network func(link int) (string, bool)) (int, net.Addr, error) {
	if len(h) < headerOverhead+2 || len(h) > headerOverhead+maxPlaintext {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(h))
	}
	cur, prev, err := r.keys()
	if err != nil {
		return 0, nil, err
	}
	var k *headerKey
	switch {
	case h[0] == cur.id:
		k = cur
	case prev != nil && h[0] == prev.id:
		k = prev
	default:
		return 0, nil, fmt.Errorf("%w: unknown key id %d", ErrBadHeader, h[0])
	}
	pt, err := k.open(h)
	if err != nil {
		return 0, nil, err
	}
	return parsePledge(pt, network)
}
