package gateway

import (
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tumbler-iot/tumbler/pki"
)

// InitOptions parameterise Init.
type InitOptions struct {
	// Domain names the owner in certificate subjects.
	Domain string
	// ID is the gateway id.
	ID string
	// Manufacturers are manufacturer CA files to trust (copied by path).
	Manufacturers []string
	// MASAURL and MASACA go into the masa section.
	MASAURL string
	MASACA  string
	// Listen overrides registrar.listen.
	Listen string
	// AdminListen overrides admin.listen.
	AdminListen string
	Now         time.Time
}

// File names Init writes inside its directory.
const (
	FileConfig        = "gateway.yaml"
	FileDomainCA      = "domain-ca.pem"
	FileDomainCAKey   = "domain-ca.key"
	FileRegistrar     = "registrar.pem"
	FileRegistrarKey  = "registrar.key"
	FileRecords       = "records.pem"
	FileRecordsKey    = "records.key"
	defaultDomainName = "Tumbler Domain"
)

// Init creates a domain CA, a registrar key and certificate, and a
// gateway.yaml in dir (like `step ca init`). It refuses to touch a directory
// that already holds any of those files.
func Init(dir string, o InitOptions) (string, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Domain == "" {
		o.Domain = defaultDomainName
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, f := range []string{FileConfig, FileDomainCA, FileDomainCAKey, FileRegistrar, FileRegistrarKey, FileRecords, FileRecordsKey} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return "", fmt.Errorf("%s already exists: refusing to overwrite", filepath.Join(dir, f))
		}
	}
	caKey, err := pki.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	ca, err := pki.NewCA(o.Now, caKey, pki.Profile{Subject: pkix.Name{CommonName: o.Domain + " CA", Organization: []string{o.Domain}}})
	if err != nil {
		return "", err
	}
	regKey, err := pki.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	reg, err := pki.NewRegistrarCert(o.Now, &pki.Issuer{Cert: ca, Key: caKey}, regKey.Public(),
		pki.Profile{Subject: pkix.Name{CommonName: o.Domain + " Registrar", Organization: []string{o.Domain}}})
	if err != nil {
		return "", err
	}
	recKey, err := pki.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	rec, err := pki.NewSignerCert(o.Now, &pki.Issuer{Cert: ca, Key: caKey}, recKey.Public(),
		pki.Profile{Subject: pkix.Name{CommonName: o.Domain + " Record Signer", Organization: []string{o.Domain}}})
	if err != nil {
		return "", err
	}
	recPEM, err := pki.EncodeKey(recKey)
	if err != nil {
		return "", err
	}
	cfg := Defaults()
	cfg.Store = "tumbler.db"
	cfg.Domain = DomainConfig{CACert: FileDomainCA, CAKey: FileDomainCAKey, RegistrarCert: FileRegistrar, RegistrarKey: FileRegistrarKey,
		RecordsCert: FileRecords, RecordsKey: FileRecordsKey}
	cfg.Registrar.Manufacturers = o.Manufacturers
	cfg.MASA.URL, cfg.MASA.CA = o.MASAURL, o.MASACA
	if o.ID != "" {
		cfg.ID = o.ID
	}
	if o.Listen != "" {
		cfg.Registrar.Listen = o.Listen
	}
	if o.AdminListen != "" {
		cfg.Admin.Listen = o.AdminListen
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return "", err
	}
	cfg.Admin.Tokens = []string{base64.RawURLEncoding.EncodeToString(tok)}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	caPEM, err := pki.EncodeKey(caKey)
	if err != nil {
		return "", err
	}
	regPEM, err := pki.EncodeKey(regKey)
	if err != nil {
		return "", err
	}
	header := []byte("# Tumbler gateway configuration (written by `tumbler init`).\n" +
		"# Add the manufacturer CAs whose devices may join under registrar.manufacturers.\n" +
		"# admin.tokens grant the device API: `tumbler device --token ...` (or TUMBLER_TOKEN).\n")
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{FileDomainCAKey, caPEM, 0o600},
		{FileDomainCA, pki.EncodeCerts(ca), 0o644},
		{FileRegistrarKey, regPEM, 0o600},
		{FileRegistrar, pki.EncodeCerts(reg, ca), 0o644},
		{FileRecordsKey, recPEM, 0o600},
		{FileRecords, pki.EncodeCerts(rec, ca), 0o644},
		{FileConfig, append(header, y...), 0o644},
	} {
		if err := pki.WriteNew(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, FileConfig), nil
}
