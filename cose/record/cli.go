package record

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"

	"github.com/tumbler-iot/tumbler/cose"
)

// VerifyFiles is `tumbler record verify --key PEM [--chain] FILES...`: it
// reads each file (one record per file, the raw COSE_Sign1 bytes), parses
// it and verifies it under pub, in the order given; then, if chain is set,
// it checks the chain rules (see Verifier) over the files in that order
// (the caller sorts them, e.g. by sequence number). All signatures are
// checked before any chain rule, so a forged record is reported as such
// rather than as a chain break. The first failure is returned as a
// *FileError naming the file, wrapping the reading or parsing error, the
// verification error or a *ChainError. No files is ErrNoRecords.
//
// readFile reads a file; nil means os.ReadFile bounded to
// cose.MaxMessageSize (a larger file fails without being read whole).
func VerifyFiles(pub crypto.PublicKey, chain bool, files []string, readFile func(string) ([]byte, error)) error {
	if len(files) == 0 {
		return ErrNoRecords
	}
	if err := checkP256(pub); err != nil {
		return err
	}
	if readFile == nil {
		readFile = readBounded
	}
	// One pass: signatures are checked for every file; the chain is fed
	// until its first failure, which is reported only if all signatures
	// verify.
	var (
		v        Verifier
		chainErr error
	)
	for _, name := range files {
		data, err := readFile(name)
		if err != nil {
			return &FileError{File: name, Err: err}
		}
		s, err := Parse(data)
		if err != nil {
			return &FileError{File: name, Err: err}
		}
		if err := s.Verify(pub); err != nil {
			return &FileError{File: name, Err: err}
		}
		if chain && chainErr == nil {
			if err := v.Add(s); err != nil {
				chainErr = &FileError{File: name, Err: err}
			}
		}
	}
	return chainErr
}

// readBounded reads a file of at most cose.MaxMessageSize bytes.
func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, cose.MaxMessageSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > cose.MaxMessageSize {
		return nil, fmt.Errorf("%w: %w: file larger than %d bytes", ErrMalformed, cose.ErrTooLarge, cose.MaxMessageSize)
	}
	return data, nil
}

// LoadPublicKey returns the gateway public key from PEM data: the first
// "PUBLIC KEY" (PKIX SubjectPublicKeyInfo) or "CERTIFICATE" block, other
// blocks skipped. The key must be ECDSA P-256. Anything else fails with
// ErrKey.
func LoadPublicKey(pemData []byte) (crypto.PublicKey, error) {
	rest := pemData
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PUBLIC KEY or CERTIFICATE PEM block", ErrKey)
		}
		var pub crypto.PublicKey
		switch blk.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrKey, err)
			}
			pub = k
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrKey, err)
			}
			pub = c.PublicKey
		default:
			continue
		}
		if err := checkP256(pub); err != nil {
			return nil, err
		}
		return pub, nil
	}
}
