package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/tumbler-iot/tumbler/cose"
)

// memFiles serves files from a map.
func memFiles(m map[string][]byte) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		b, ok := m[name]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
		}
		return b, nil
	}
}

func TestVerifyFiles(t *testing.T) {
	key := gatewayKey(t)
	pub := &key.PublicKey
	names, data := loadGoldenChain(t)
	files := map[string][]byte{}
	for i, n := range names {
		files[n] = data[i]
	}
	with := func(name string, b []byte) func(string) ([]byte, error) {
		m := map[string][]byte{}
		for k, v := range files {
			m[k] = v
		}
		m[name] = b
		return memFiles(m)
	}
	badSig := bytes.Clone(data[5])
	badSig[len(badSig)-40] ^= 0x01 // inside r
	other := otherKey(t)
	m, err := cose.Parse(data[6])
	if err != nil {
		t.Fatal(err)
	}
	fromOther := signPayload(t, other, m.Payload())

	tests := []struct {
		name  string
		pub   any
		chain bool
		files []string
		read  func(string) ([]byte, error)
		file  string // the file the error names
		want  []error
	}{
		{name: "chain", pub: pub, chain: true, files: names, read: memFiles(files)},
		{name: "no chain", pub: pub, files: names, read: memFiles(files)},
		{name: "one file", pub: pub, chain: true, files: names[2:3], read: memFiles(files), file: names[2], want: []error{ErrFirstHasPrev}},
		{name: "one file without chain", pub: pub, files: names[3:4], read: memFiles(files)},
		{name: "swapped order", pub: pub, chain: true, files: swapNames(names, 1, 2), read: memFiles(files), file: names[1], want: []error{ErrSeqOrder}},
		{name: "swapped order without chain", pub: pub, files: swapNames(names, 1, 2), read: memFiles(files)},
		{name: "missing middle", pub: pub, chain: true, files: append(names[:2:2], names[3:]...), read: memFiles(files), file: names[6], want: []error{ErrChainBreak}},
		{name: "bad signature", pub: pub, chain: true, files: names, read: with(names[5], badSig), file: names[5], want: []error{cose.ErrBadSignature}},
		{name: "bad signature after chain break", pub: pub, chain: true, files: swapNames(names, 0, 1), read: with(names[5], badSig), file: names[5], want: []error{cose.ErrBadSignature}},
		{name: "other gateway", pub: pub, chain: true, files: names, read: with(names[6], fromOther), file: names[6], want: []error{ErrKeyID}},
		{name: "wrong key", pub: &other.PublicKey, files: names, read: memFiles(files), file: names[0], want: []error{ErrKeyID}},
		{name: "not a record", pub: pub, files: names, read: with(names[2], []byte("not cbor")), file: names[2], want: []error{ErrMalformed}},
		{name: "missing file", pub: pub, files: append(names[:1:1], "nope"), read: memFiles(files), file: "nope", want: []error{os.ErrNotExist}},
		{name: "no files", pub: pub, read: memFiles(files), want: []error{ErrNoRecords}},
		{name: "P-384 key", pub: &otherP384(t).PublicKey, files: names, read: memFiles(files), want: []error{ErrKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyFiles(tc.pub, tc.chain, tc.files, tc.read)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("got %v, want %v", err, w)
				}
			}
			if tc.file == "" {
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != tc.file {
				t.Fatalf("error %v does not name %s", err, tc.file)
			}
		})
	}
}

// TestVerifyFilesDisk uses the default, bounded reader.
func TestVerifyFilesDisk(t *testing.T) {
	dir := t.TempDir()
	_, data := loadGoldenChain(t)
	var names []string
	for i, d := range data {
		n := filepath.Join(dir, string(rune('a'+i))+".cose")
		if err := os.WriteFile(n, d, 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	pub := &gatewayKey(t).PublicKey
	if err := VerifyFiles(pub, true, names, nil); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(dir, "large.cose")
	if err := os.WriteFile(large, make([]byte, cose.MaxMessageSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	err := VerifyFiles(pub, false, []string{names[0], large}, nil)
	var fe *FileError
	if !errors.Is(err, cose.ErrTooLarge) || !errors.As(err, &fe) || fe.File != large {
		t.Fatalf("got %v", err)
	}
	if err := VerifyFiles(pub, false, []string{filepath.Join(dir, "none")}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func swapNames(names []string, i, j int) []string {
	out := append([]string(nil), names...)
	out[i], out[j] = out[j], out[i]
	return out
}

func TestLoadPublicKey(t *testing.T) {
	key := gatewayKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"}}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	p384 := otherP384(t)
	p384SPKI, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, edPub, edKey)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := readTestdata(t, "gateway_key.pem")

	tests := []struct {
		name string
		pem  []byte
		ok   bool
	}{
		{name: "public key", pem: readTestdata(t, "gateway_pub.pem"), ok: true},
		{name: "certificate", pem: certPEM, ok: true},
		{name: "certificate after a private key", pem: append(bytes.Clone(privPEM), certPEM...), ok: true},
		{name: "private key only", pem: privPEM},
		{name: "P-384 public key", pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p384SPKI})},
		{name: "Ed25519 certificate", pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: edDER})},
		{name: "bad public key DER", pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x00}})},
		{name: "bad certificate DER", pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x00}})},
		{name: "not PEM", pem: []byte("hello")},
		{name: "empty", pem: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := LoadPublicKey(tc.pem)
			if !tc.ok {
				if !errors.Is(err, ErrKey) {
					t.Fatalf("got %v, want ErrKey", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !key.PublicKey.Equal(pub) {
				t.Fatal("not the gateway key")
			}
		})
	}
}
