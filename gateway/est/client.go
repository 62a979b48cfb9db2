package est

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"

	"github.com/smallstep/pkcs7"

	"github.com/tumbler-iot/tumbler/coap"
)

// Size bounds for what the parsers in this package accept.
const (
	// MaxCSRSize bounds a PKCS#10 request. A P-256 CSR is about 300 bytes,
	// an RSA-4096 one about 1.7 KiB; OpenThread caps its CSR at 512 bytes.
	MaxCSRSize = 4096
	// MaxCerts bounds the certificates in one /crts, /sen or /sren
	// response. cBRSKI asks for 1-3 CA certificates on /crts, optionally
	// followed by third-party trust anchors.
	MaxCerts = 8
	// MaxCertsSize bounds a certificate response payload.
	MaxCertsSize = 16 << 10
)

// RSA modulus sizes the server accepts in a CSR: at least 2048 bits (NIST
// SP 800-131A), at most 4096 to bound the cost of a request.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// NewCSR returns a DER PKCS#10 CertificationRequest (RFC 2986 §4) for key
// with the given subject, as a pledge sends it to /sen or /sren with
// Content-Format 286. cBRSKI -31 §"Pledge Enrollment Procedure" asks for the
// IDevID subject unmodified. The key must be one the server accepts
// (ECDSA P-256, Ed25519, RSA 2048-4096); the signature algorithm follows from
// it (ecdsa-with-SHA256, Ed25519, sha256WithRSAEncryption).
func NewCSR(rand io.Reader, key crypto.Signer, subject pkix.Name) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: nil key", ErrKeyType)
	}
	if err := checkPublicKey(key.Public()); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		return nil, fmt.Errorf("est: create csr: %w", err)
	}
	return der, nil
}

// ParseCerts decodes a certificate response of the given Content-Format:
//
//   - 287 application/pkix-cert: one DER Certificate (RFC 5280 §4.1);
//   - 281 application/pkcs7-mime; smime-type=certs-only: a degenerate
//     SignedData with certificates and no signers (RFC 5652 §5, RFC 7030
//     §4.1.3);
//   - 62 application/multipart-core: a CBOR array of (287, bstr) pairs
//     (RFC 8710 §2; cBRSKI -31 §"Multipart"), decoded strictly: an even
//     number of elements, uint formats, byte-string parts, only 287 parts,
//     definite lengths and preferred serialization.
//
// Certificates are returned in payload order (for /crts: issuer of the
// LDevID first, then upward). The payload is bounded by MaxCertsSize and
// MaxCerts. ParseCerts does not verify any signature or chain.
func ParseCerts(format int, payload []byte) ([]*x509.Certificate, error) {
	if len(payload) > MaxCertsSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(payload), MaxCertsSize)
	}
	switch format {
	case coap.FormatPKIXCert:
		c, err := parseCert(payload)
		if err != nil {
			return nil, err
		}
		return []*x509.Certificate{c}, nil
	case coap.FormatPKCS7CertsOnly:
		return parsePKCS7(payload)
	case coap.FormatMultipartCore:
		parts, err := decodeMultipart(payload)
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 || len(parts) > MaxCerts {
			return nil, fmt.Errorf("%w: %d parts", ErrNoCerts, len(parts))
		}
		out := make([]*x509.Certificate, 0, len(parts))
		for i, p := range parts {
			if int(p.format) != coap.FormatPKIXCert {
				return nil, fmt.Errorf("%w: part %d has content-format %d", ErrPartFormat, i, p.format)
			}
			c, err := parseCert(p.data)
			if err != nil {
				return nil, fmt.Errorf("part %d: %w", i, err)
			}
			out = append(out, c)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: %d", ErrFormat, format)
	}
}

func parseCert(der []byte) (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCert, err)
	}
	return c, nil
}

// parsePKCS7 accepts a certs-only SignedData:
//
//	ContentInfo ::= SEQUENCE { contentType id-signedData, content [0] EXPLICIT SignedData }
//	SignedData ::= SEQUENCE { version, digestAlgorithms SET OF ..., encapContentInfo,
//	    certificates [0] IMPLICIT CertificateSet OPTIONAL, crls [1] ... OPTIONAL,
//	    signerInfos SET OF SignerInfo }
//
// RFC 5652 §3, §5.1; "certs-only" is RFC 8551 §3.2.2 (no content, no
// signers). CMS permits BER, so BER input is accepted.
func parsePKCS7(b []byte) ([]*x509.Certificate, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrPKCS7)
	}
	p7, err := pkcs7.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPKCS7, err)
	}
	if len(p7.Signers) != 0 || len(p7.Content) != 0 {
		return nil, fmt.Errorf("%w: has content or signers", ErrPKCS7)
	}
	if len(p7.Certificates) == 0 || len(p7.Certificates) > MaxCerts {
		return nil, fmt.Errorf("%w: %d certificates", ErrNoCerts, len(p7.Certificates))
	}
	return p7.Certificates, nil
}

// certsOnly encodes certificates as a certs-only PKCS#7 SignedData (281).
func certsOnly(certs ...*x509.Certificate) ([]byte, error) {
	var buf bytes.Buffer
	for _, c := range certs {
		buf.Write(c.Raw)
	}
	return pkcs7.DegenerateCertificate(buf.Bytes())
}

// checkPublicKey applies the key policy: ECDSA P-256 (the cBRSKI and CoAP
// mandatory curve), Ed25519 (cBRSKI -31 requires Ed25519 support on DTLS
// 1.3), or RSA with a 2048-4096 bit modulus.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: ECDSA curve %s (only P-256)", ErrKeyType, k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return fmt.Errorf("%w: RSA-%d (need %d to %d bits)", ErrKeyType, n, minRSABits, maxRSABits)
		}
		return nil
	default:
		return fmt.Errorf("%w: %T", ErrKeyType, pub)
	}
}

// acceptedCSRAlgorithms are the CSR signature algorithms the server
// verifies. SHA-1 and MD5 based ones are refused: x509's CSR CheckSignature
// would still accept SHA-1.
var acceptedCSRAlgorithms = map[x509.SignatureAlgorithm]bool{
	x509.ECDSAWithSHA256:  true,
	x509.ECDSAWithSHA384:  true,
	x509.ECDSAWithSHA512:  true,
	x509.PureEd25519:      true,
	x509.SHA256WithRSA:    true,
	x509.SHA384WithRSA:    true,
	x509.SHA512WithRSA:    true,
	x509.SHA256WithRSAPSS: true,
	x509.SHA384WithRSAPSS: true,
	x509.SHA512WithRSAPSS: true,
}
