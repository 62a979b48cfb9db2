// Package est is Tumbler's EST-coaps server (RFC 9148) for the domain CA,
// and the client-side helpers a pledge needs to use it.
//
// The server answers, under /.well-known/est:
//
//   - GET /crts: the CA certificates. Accept none or 287 gives the issuing
//     CA alone. Accept 62 gives multipart-core (RFC 8710) with the hierarchy
//     as 287 parts, issuing CA first. Accept 281 gives the same in PKCS#7
//     certs-only. The response has an ETag, and a matching request ETag gets
//     2.03 Valid (cBRSKI -31 §"Renewal of CA certificates").
//   - POST /sen and /sren: a DER PKCS#10 CSR (Content-Format 286) in, one
//     LDevID out. Accept none or 287 gives the DER certificate, and 281
//     gives it as PKCS#7 certs-only.
//   - GET /att: the CSR attributes (285) the CSR should follow.
//
// The transport (CoAP over DTLS, block-wise) is the coap package's job. The
// server sees a coap.Request whose Peer.Chain is the client chain the DTLS
// handshake verified. Every function requires that chain (RFC 9148 §5).
// Who may enroll is the Authorizer's decision (the registrar). Every issued
// certificate goes to the Recorder before it is answered.
//
// # LDevID profile
//
// The LDevID has:
//
//   - subject: the CSR subject, with serialNumber (2.5.4.5) set to the
//     serial of the authenticated device. A different serialNumber in the
//     CSR is refused. On /sren the subject is the current certificate's,
//     byte for byte, and the CSR must name the same attributes.
//   - the CSR public key: ECDSA P-256, Ed25519 or RSA 2048-4096.
//   - serial number: a random positive 128-bit integer.
//   - keyUsage: digitalSignature. extKeyUsage: clientAuth.
//   - basicConstraints: CA:FALSE. Key identifiers: SKI, and AKI from the CA.
//   - validity: notBefore one minute in the past. The lifetime is
//     DefaultValidity (two years), capped at the CA's notAfter.
//
// CSR attributes and requested extensions are ignored. Extra extensions
// come from the WithTemplate hook.
//
// Why two years: constrained devices sleep, lose power and may have no
// clock. An LDevID that expires before the device re-enrolls forces a full
// cBRSKI onboarding again, with the MASA. Revocation does not rest on
// expiry. Devices check in weekly over OSCORE, so the gateway learns within
// a week that a device is gone, and reset or decommission removes it from
// the registrar's records, which the Authorizer consults on /sren. Two
// years bounds the life of a leaked key. A device that renews at half its
// lifetime still has a year of slack.
//
// # Client side
//
// NewCSR builds the request a pledge sends. ParseCerts decodes 287, 281 and
// 62 responses. ParseCSRAttrs decodes 285.
package est
