package est

import "errors"

// Sentinel errors. Handler errors wrap one of these inside a *coap.Error
// that carries the response code; the client-side parsers return them
// wrapped with detail. Test with errors.Is.
var (
	// ErrConfig: NewServer was given an unusable CA or option.
	ErrConfig = errors.New("est: bad configuration")

	// ErrUnauthenticated: the request did not arrive over DTLS with a
	// client certificate (RFC 9148 §5: every EST-coaps function requires
	// an authenticated client). Answered 4.01.
	ErrUnauthenticated = errors.New("est: client not authenticated")
	// ErrContentFormat: the request Content-Format is not the one the
	// resource takes (286 on /sen and /sren). Answered 4.15.
	ErrContentFormat = errors.New("est: unsupported content-format")
	// ErrAccept: the Accept option names a format the resource cannot
	// produce. Answered 4.06.
	ErrAccept = errors.New("est: unacceptable format")
	// ErrTooLarge: a payload exceeds its bound (MaxCSRSize for a CSR,
	// MaxCertsSize for a certificate response). The server answers 4.13.
	ErrTooLarge = errors.New("est: payload too large")
	// ErrBadCSR: the payload is not a DER PKCS#10 CertificationRequest.
	// Answered 4.00.
	ErrBadCSR = errors.New("est: malformed csr")
	// ErrCSRAlgorithm: the CSR is signed with an algorithm this server does
	// not accept (SHA-1, MD5, unknown). Answered 4.00.
	ErrCSRAlgorithm = errors.New("est: csr signature algorithm not accepted")
	// ErrKeyType: the CSR's public key is not ECDSA P-256, Ed25519 or RSA of
	// 2048 to 4096 bits. Answered 4.00.
	ErrKeyType = errors.New("est: key type not accepted")
	// ErrCSRSignature: the CSR's self-signature does not verify (no proof of
	// possession of the private key). Answered 4.00.
	ErrCSRSignature = errors.New("est: csr signature invalid")
	// ErrNotAuthorized: the Authorizer refused the peer. Answered 4.03
	// unless the Authorizer's error carries its own CoAP code.
	ErrNotAuthorized = errors.New("est: not authorized")
	// ErrSerialMismatch: the CSR subject carries a serialNumber other than
	// the authenticated device's. Answered 4.00.
	ErrSerialMismatch = errors.New("est: csr serial mismatch")
	// ErrSubjectMismatch: a re-enrollment CSR's subject differs from the
	// subject of the certificate being renewed (RFC 7030 §4.2.2). Answered
	// 4.00.
	ErrSubjectMismatch = errors.New("est: csr subject differs from current certificate")
	// ErrNotRecorded: the Recorder failed, so the certificate was not
	// returned. Answered 5.03 (retry later).
	ErrNotRecorded = errors.New("est: issuance not recorded")
	// ErrIssue: the CA could not issue (expired CA, signer failure, an
	// Authorizer that returned an unusable Identity). Answered 5.00.
	ErrIssue = errors.New("est: cannot issue")

	// ErrFormat: ParseCerts was given a Content-Format it does not parse.
	ErrFormat = errors.New("est: unsupported certificate format")
	// ErrMultipart: the payload is not a well-formed application/
	// multipart-core representation in preferred serialization (RFC 8710 §2).
	ErrMultipart = errors.New("est: malformed multipart-core")
	// ErrPartFormat: a multipart-core part is not a certificate (287).
	ErrPartFormat = errors.New("est: multipart part is not application/pkix-cert")
	// ErrPKCS7: the payload is not a certs-only PKCS#7 SignedData.
	ErrPKCS7 = errors.New("est: malformed pkcs7 certs-only")
	// ErrCert: a certificate does not parse as DER X.509.
	ErrCert = errors.New("est: malformed certificate")
	// ErrNoCerts: the payload holds no certificate, or more than MaxCerts.
	ErrNoCerts = errors.New("est: wrong number of certificates")
	// ErrCSRAttrs: the payload is not a DER CsrAttrs (RFC 7030 §4.5.2).
	ErrCSRAttrs = errors.New("est: malformed csrattrs")
)
