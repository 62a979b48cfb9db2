package masa

import (
	"bytes"
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tumbler-iot/tumbler/cose/record"
	"github.com/tumbler-iot/tumbler/pki"
)

// Config is masa.yaml. Relative paths are relative to the file.
type Config struct {
	// Listen is the HTTPS address.
	Listen string `yaml:"listen"`
	// URL is written into IDevIDs (id-pe-masa-url); default https://<listen>.
	URL string `yaml:"url"`
	// CACert/CAKey: the manufacturer CA; it issues IDevIDs and signs
	// vouchers.
	CACert string `yaml:"ca_cert"`
	CAKey  string `yaml:"ca_key"`
	// TLSCert/TLSKey: the HTTPS server certificate (issued by the CA).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AuditLog is the JSON-lines audit log file.
	AuditLog string `yaml:"audit_log"`
	// Policy: first-claim or any.
	Policy Policy `yaml:"policy"`
	// RecoveryAuthorities are PEM files (public keys or certificates) of
	// the authorities whose repossession orders this MASA honours.
	RecoveryAuthorities []string `yaml:"recovery_authorities"`
	// RepossessionNotice is how long a claim waits for the owner to object.
	RepossessionNotice time.Duration `yaml:"repossession_notice"`
	// OwnershipLog keeps transfer authorisations and claims.
	OwnershipLog string `yaml:"ownership_log"`

	dir string
}

// Files Init writes.
const (
	FileConfig = "masa.yaml"
	FileCA     = "manufacturer-ca.pem"
	FileCAKey  = "manufacturer-ca.key"
	FileTLS    = "masa.pem"
	FileTLSKey = "masa.key"
	FileAudit  = "audit.jsonl"
	FileOwner  = "ownership.jsonl"
)

// LoadConfig reads masa.yaml.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c := Config{Listen: "127.0.0.1:9443", Policy: FirstClaim, RepossessionNotice: DefaultNotice}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w: %v", path, ErrConfig, err)
	}
	c.dir = filepath.Dir(path)
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: listen: %q is not host:port", ErrConfig, c.Listen)
	}
	for _, f := range []struct{ n, v string }{{"ca_cert", c.CACert}, {"ca_key", c.CAKey}, {"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.v == "" {
			return fmt.Errorf("%w: %s: required", ErrConfig, f.n)
		}
	}
	if c.URL != "" {
		if _, err := pki.NormalizeMASAURL(c.URL); err != nil {
			return fmt.Errorf("%w: url: %v", ErrConfig, err)
		}
	}
	switch c.Policy {
	case FirstClaim, AnyDomain:
	default:
		return fmt.Errorf("%w: policy: %q is not one of %s, %s", ErrConfig, c.Policy, FirstClaim, AnyDomain)
	}
	if c.RepossessionNotice < 0 {
		return fmt.Errorf("%w: repossession_notice: negative", ErrConfig)
	}
	return nil
}

func (c Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// EffectiveURL is the URL IDevIDs carry.
func (c Config) EffectiveURL() string {
	if c.URL != "" {
		return c.URL
	}
	return "https://" + c.Listen
}

// Open builds the MASA and its TLS certificate from the configuration.
func Open(c Config, opts ...Option) (*MASA, tls.Certificate, error) {
	ca, err := pki.LoadCerts(c.path(c.CACert))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("%w: ca_cert: %v", ErrConfig, err)
	}
	key, err := pki.LoadKey(c.path(c.CAKey))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("%w: ca_key: %v", ErrConfig, err)
	}
	cert, err := tls.LoadX509KeyPair(c.path(c.TLSCert), c.path(c.TLSKey))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("%w: tls_cert/tls_key: %v", ErrConfig, err)
	}
	own := []Option{WithNotice(c.RepossessionNotice), WithOwnershipLog(c.path(c.OwnershipLog))}
	for i, f := range c.RecoveryAuthorities {
		b, err := os.ReadFile(c.path(f))
		if err != nil {
			return nil, tls.Certificate{}, fmt.Errorf("%w: recovery_authorities[%d]: %v", ErrConfig, i, err)
		}
		pub, err := record.LoadPublicKey(b)
		if err != nil {
			return nil, tls.Certificate{}, fmt.Errorf("%w: recovery_authorities[%d]: %v", ErrConfig, i, err)
		}
		own = append(own, WithRecoveryAuthorities(pub))
	}
	m, err := New(ca[0], key, c.EffectiveURL(), c.Policy, c.path(c.AuditLog), append(own, opts...)...)
	return m, cert, err
}

// Init creates a manufacturer CA, an HTTPS certificate for hosts (names or
// IP literals) and masa.yaml in dir; it refuses to overwrite.
func Init(dir, listen string, hosts []string, now time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, f := range []string{FileConfig, FileCA, FileCAKey, FileTLS, FileTLSKey} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return "", fmt.Errorf("%s already exists: refusing to overwrite", filepath.Join(dir, f))
		}
	}
	if len(hosts) == 0 {
		h, _, err := net.SplitHostPort(listen)
		if err != nil {
			return "", fmt.Errorf("%w: listen: %q is not host:port", ErrConfig, listen)
		}
		hosts = []string{h}
		if h == "127.0.0.1" || h == "::1" || h == "" {
			hosts = []string{"localhost", "127.0.0.1", "::1"}
		}
	}
	caKey, err := pki.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	ca, err := pki.NewCA(now, caKey, pki.Profile{Subject: pkix.Name{CommonName: "Tumbler Lab Manufacturer CA", Organization: []string{"Tumbler Lab"}}})
	if err != nil {
		return "", err
	}
	tlsKey, err := pki.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	tlsCert, err := pki.NewServerCert(now, &pki.Issuer{Cert: ca, Key: caKey}, tlsKey.Public(),
		pki.Profile{Subject: pkix.Name{CommonName: hosts[0], Organization: []string{"Tumbler Lab"}}}, hosts...)
	if err != nil {
		return "", err
	}
	caPEM, err := pki.EncodeKey(caKey)
	if err != nil {
		return "", err
	}
	tlsPEM, err := pki.EncodeKey(tlsKey)
	if err != nil {
		return "", err
	}
	cfg := Config{Listen: listen, CACert: FileCA, CAKey: FileCAKey, TLSCert: FileTLS, TLSKey: FileTLSKey, AuditLog: FileAudit,
		OwnershipLog: FileOwner, Policy: FirstClaim, RepossessionNotice: DefaultNotice}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	y = append([]byte("# Tumbler lab MASA (written by `tumbler masa init`).\n# Hosts in the TLS certificate: "+strings.Join(hosts, ", ")+"\n"), y...)
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{FileCAKey, caPEM, 0o600}, {FileCA, pki.EncodeCerts(ca), 0o644},
		{FileTLSKey, tlsPEM, 0o600}, {FileTLS, pki.EncodeCerts(tlsCert, ca), 0o644},
		{FileConfig, y, 0o644},
	} {
		if err := pki.WriteNew(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, FileConfig), nil
}
