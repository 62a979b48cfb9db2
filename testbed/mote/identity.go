package mote

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tumbler-iot/tumbler/pki"
)

// Files of a device directory, as `tumbler masa idevid --out DIR` writes
// them and Enrollment.Save adds to.
const (
	FileIDevID         = "idevid.pem"
	FileIDevIDKey      = "idevid.key"
	FileManufacturerCA = "manufacturer-ca.pem"
	FileLDevID         = "ldevid.pem"
	FileLDevIDKey      = "ldevid.key"
	FileDomainCA       = "domain-ca.pem"
)

// Identity is what a device leaves the factory with.
type Identity struct {
	// Chain is the IDevID (first) and any intermediate CAs.
	Chain []*x509.Certificate
	Key   crypto.Signer
	// Manufacturer is the trust anchor for vouchers: the key that signs
	// them, or the CA of the MASA certificate that does.
	Manufacturer *x509.Certificate
}

// IDevID is the device certificate.
func (id Identity) IDevID() *x509.Certificate { return id.Chain[0] }

// Check validates the identity is usable for cBRSKI.
func (id Identity) Check() error {
	switch {
	case len(id.Chain) == 0 || id.Key == nil:
		return fmt.Errorf("%w: IDevID certificate and key required", ErrIdentity)
	case id.Manufacturer == nil:
		return fmt.Errorf("%w: manufacturer trust anchor required", ErrIdentity)
	case id.Chain[0].Subject.SerialNumber == "":
		return fmt.Errorf("%w: IDevID has no serialNumber", ErrIdentity)
	}
	pub, ok := id.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(id.Chain[0].PublicKey) {
		return fmt.Errorf("%w: key does not match the IDevID", ErrIdentity)
	}
	return nil
}

// LoadIdentity reads a device directory.
func LoadIdentity(dir string) (Identity, error) {
	chain, err := pki.LoadCerts(filepath.Join(dir, FileIDevID))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	key, err := pki.LoadKey(filepath.Join(dir, FileIDevIDKey))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	mfr, err := pki.LoadCerts(filepath.Join(dir, FileManufacturerCA))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	id := Identity{Chain: chain, Key: key, Manufacturer: mfr[0]}
	return id, id.Check()
}

// SaveIdentity writes a device directory (refusing to overwrite).
func SaveIdentity(dir string, id Identity) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(id.Key)
	if err != nil {
		return err
	}
	return errors.Join(
		pki.WriteNew(filepath.Join(dir, FileIDevIDKey), keyPEM, 0o600),
		pki.WriteNew(filepath.Join(dir, FileIDevID), pki.EncodeCerts(id.Chain...), 0o644),
		pki.WriteNew(filepath.Join(dir, FileManufacturerCA), pki.EncodeCerts(id.Manufacturer), 0o644),
	)
}

// Enrollment is what onboarding leaves on the device.
type Enrollment struct {
	LDevID *x509.Certificate
	Key    crypto.Signer
	// DomainCAs are the domain trust anchors: the pinned domain CA, or
	// what /crts returned.
	DomainCAs []*x509.Certificate
	// Registrar is the registrar's DTLS certificate chain.
	Registrar []*x509.Certificate
	// PVR and Voucher are the signed artifacts exchanged.
	PVR     []byte
	Voucher []byte
}

// Save writes the LDevID, its key and the domain CAs into dir.
func (e *Enrollment) Save(dir string) error {
	keyPEM, err := pki.EncodeKey(e.Key)
	if err != nil {
		return err
	}
	for _, f := range []string{FileLDevID, FileLDevIDKey, FileDomainCA} {
		os.Remove(filepath.Join(dir, f)) // re-enrollment replaces them
	}
	return errors.Join(
		pki.WriteNew(filepath.Join(dir, FileLDevIDKey), keyPEM, 0o600),
		pki.WriteNew(filepath.Join(dir, FileLDevID), pki.EncodeCerts(e.LDevID), 0o644),
		pki.WriteNew(filepath.Join(dir, FileDomainCA), pki.EncodeCerts(e.DomainCAs...), 0o644),
	)
}
