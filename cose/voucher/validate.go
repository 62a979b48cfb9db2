package voucher

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// MaxClockSkew is how far in the future a peer's created-on may lie before
// the artifact is refused with ErrNotYetValid.
const MaxClockSkew = 5 * time.Minute

// ValidatePVR applies the registrar's checks to a pledge voucher-request
// that arrived over the DTLS connection authenticated by idevid, the
// pledge's IDevID certificate, and terminated by registrarCert, the
// registrar's end-entity certificate (RFC 8995 §5.5;
// draft-ietf-anima-constrained-voucher-31 §"Registrar Voucher Request").
// The COSE signature must be verified separately with idevid's key.
//
//   - serial-number must equal the IDevID subject serialNumber
//     (ErrSerialMismatch; ErrNoSerialNumber if the IDevID has none);
//   - a nonce is required (ErrNonceMissing): Tumbler issues nonced
//     vouchers only;
//   - the assertion must be proximity (ErrAssertion);
//   - proximity-registrar-cert, -pubk or -pubk-sha256 must be present
//     (ErrProximityMissing) and each one present must match registrarCert
//     (ErrProximityMismatch); see CheckProximity;
//   - created-on, if present, must not lie beyond now+MaxClockSkew
//     (ErrNotYetValid); expires-on, if present, must lie after now
//     (ErrExpired).
//
// idevid-issuer, pinned-domain-* and any x5bag in the PVR are ignored.
func ValidatePVR(r *Request, idevid *x509.Certificate, registrarCert *x509.Certificate, now time.Time) error {
	if r == nil || idevid == nil || registrarCert == nil {
		return fmt.Errorf("%w: PVR, IDevID and registrar certificate are required", ErrMissingField)
	}
	serial, err := SerialNumber(idevid)
	if err != nil {
		return err
	}
	if r.SerialNumber != serial {
		return fmt.Errorf("%w: PVR says %q, IDevID says %q", ErrSerialMismatch, r.SerialNumber, serial)
	}
	if len(r.Nonce) == 0 {
		return fmt.Errorf("%w: PVR has no nonce", ErrNonceMissing)
	}
	if a, ok := r.AssertionValue(); !ok || a != Proximity {
		return fmt.Errorf("%w: PVR assertion %s, want proximity", ErrAssertion, assertionText(r.Assertion))
	}
	if err := CheckProximity(r, registrarCert); err != nil {
		return err
	}
	return checkTimes(r.CreatedOn, r.ExpiresOn, now)
}

// CheckProximity checks that a pledge voucher-request names registrarCert,
// the registrar end-entity certificate from the pledge's DTLS connection:
// proximity-registrar-cert must be that certificate (DER),
// proximity-registrar-pubk its SubjectPublicKeyInfo (RFC 7250 §3) and
// proximity-registrar-pubk-sha256 the SHA-256 of that SubjectPublicKeyInfo.
// At least one must be present (ErrProximityMissing); every one present
// must match (ErrProximityMismatch). A MASA applies the same check to the
// prior-signed-voucher-request with the certificate that signed the RVR.
func CheckProximity(r *Request, registrarCert *x509.Certificate) error {
	if r == nil || registrarCert == nil {
		return fmt.Errorf("%w: request and registrar certificate are required", ErrMissingField)
	}
	if r.ProximityRegistrarCert == nil && r.ProximityRegistrarPubK == nil && r.ProximityRegistrarPubKSHA256 == nil {
		return ErrProximityMissing
	}
	if r.ProximityRegistrarCert != nil && !bytes.Equal(r.ProximityRegistrarCert, registrarCert.Raw) {
		return fmt.Errorf("%w: proximity-registrar-cert", ErrProximityMismatch)
	}
	if r.ProximityRegistrarPubK != nil && !bytes.Equal(r.ProximityRegistrarPubK, registrarCert.RawSubjectPublicKeyInfo) {
		return fmt.Errorf("%w: proximity-registrar-pubk", ErrProximityMismatch)
	}
	if r.ProximityRegistrarPubKSHA256 != nil {
		sum := sha256.Sum256(registrarCert.RawSubjectPublicKeyInfo)
		if !bytes.Equal(r.ProximityRegistrarPubKSHA256, sum[:]) {
			return fmt.Errorf("%w: proximity-registrar-pubk-sha256", ErrProximityMismatch)
		}
	}
	return nil
}

// NewRVR builds the registrar voucher-request for a pledge voucher-request
// that passed ValidatePVR (RFC 8995 §5.5; rfc8366bis §"Updates to
// idevid-issuer"; draft-ietf-anima-constrained-voucher-31 §"Registrar
// Voucher Request"):
//
//   - created-on = now, in UTC, truncated to milliseconds;
//   - nonce copied from the PVR;
//   - serial-number taken from the IDevID, never copied from the PVR (an
//     IDevID without one leaves it empty, and encoding then fails with
//     ErrMissingField);
//   - idevid-issuer = IDevIDIssuer(idevid);
//   - prior-signed-voucher-request = pvrRaw, the whole COSE-signed PVR;
//   - assertion copied from the PVR (proximity for a validated PVR);
//   - no proximity-registrar-cert (RFC 8995 §5.5: MUST NOT).
//
// The RVR's x5bag (registrar chain plus the pledge's DTLS chain) is given
// to SignRequest.
func NewRVR(pvrRaw []byte, pvr *Request, idevid *x509.Certificate, now time.Time) *Request {
	rvr := &Request{
		CreatedOn:                 now.UTC().Truncate(time.Millisecond),
		IDevIDIssuer:              IDevIDIssuer(idevid),
		PriorSignedVoucherRequest: bytes.Clone(pvrRaw),
	}
	if pvr != nil {
		if a, ok := pvr.AssertionValue(); ok {
			rvr.Assertion = &a
		}
		rvr.Nonce = bytes.Clone(pvr.Nonce)
	}
	if serial, err := SerialNumber(idevid); err == nil {
		rvr.SerialNumber = serial
	}
	return rvr
}

// ValidateRVR applies the MASA's checks to a registrar voucher-request and
// the pledge voucher-request decoded from its prior-signed-voucher-request,
// for the pledge whose IDevID is idevid (RFC 8995 §5.5.1-5.5.5; rfc8366bis).
// The RVR and PVR signatures, the registrar's authority and the PVR's
// proximity pin against the RVR signer (CheckProximity) are verified by the
// caller.
//
//   - prior-signed-voucher-request must be present (ErrMissingField);
//   - RVR, PVR and IDevID serial numbers must be equal (ErrSerialMismatch);
//   - the PVR must carry a nonce (ErrNonceMissing) and the RVR the same
//     one (ErrNonceMissing, ErrNonceMismatch): Tumbler's MASA issues
//     nonced vouchers only;
//   - the RVR's idevid-issuer must be present (ErrMissingField) and equal
//     to IDevIDIssuer(idevid) (ErrIssuerMismatch);
//   - the PVR must assert proximity (ErrAssertion) and name its registrar
//     (ErrProximityMissing); the RVR assertion is ignored (rfc8366bis
//     refine "assertion");
//   - the RVR's created-on must not lie beyond now+MaxClockSkew
//     (ErrNotYetValid); its expires-on, if present, must lie after now
//     (ErrExpired).
func ValidateRVR(rvr *Request, pvr *Request, idevid *x509.Certificate, now time.Time) error {
	if rvr == nil || pvr == nil || idevid == nil {
		return fmt.Errorf("%w: RVR, PVR and IDevID are required", ErrMissingField)
	}
	if len(rvr.PriorSignedVoucherRequest) == 0 {
		return fmt.Errorf("%w: prior-signed-voucher-request", ErrMissingField)
	}
	serial, err := SerialNumber(idevid)
	if err != nil {
		return err
	}
	if rvr.SerialNumber != serial || pvr.SerialNumber != serial {
		return fmt.Errorf("%w: RVR %q, PVR %q, IDevID %q", ErrSerialMismatch, rvr.SerialNumber, pvr.SerialNumber, serial)
	}
	if len(pvr.Nonce) == 0 {
		return fmt.Errorf("%w: PVR has no nonce", ErrNonceMissing)
	}
	if len(rvr.Nonce) == 0 {
		return fmt.Errorf("%w: RVR has no nonce", ErrNonceMissing)
	}
	if !bytes.Equal(rvr.Nonce, pvr.Nonce) {
		return fmt.Errorf("%w: RVR and PVR nonces differ", ErrNonceMismatch)
	}
	if len(rvr.IDevIDIssuer) == 0 {
		return fmt.Errorf("%w: idevid-issuer", ErrMissingField)
	}
	if !bytes.Equal(rvr.IDevIDIssuer, IDevIDIssuer(idevid)) {
		return ErrIssuerMismatch
	}
	if a, ok := pvr.AssertionValue(); !ok || a != Proximity {
		return fmt.Errorf("%w: PVR assertion %s, want proximity", ErrAssertion, assertionText(pvr.Assertion))
	}
	if pvr.ProximityRegistrarCert == nil && pvr.ProximityRegistrarPubK == nil && pvr.ProximityRegistrarPubKSHA256 == nil {
		return ErrProximityMissing
	}
	return checkTimes(rvr.CreatedOn, rvr.ExpiresOn, now)
}

// PledgeCheck is what a pledge knows when it validates a voucher.
type PledgeCheck struct {
	// SerialNumber is the pledge's own serial-number (required).
	SerialNumber string

	// Nonce is the nonce the pledge sent in its PVR. Nil means the pledge
	// asked for a nonceless voucher; the voucher must then carry
	// expires-on and Now must be set.
	Nonce []byte

	// IDevIDIssuer is IDevIDIssuer of the pledge's own IDevID; a voucher
	// carrying idevid-issuer must match it.
	IDevIDIssuer []byte

	// Now is the pledge's clock; zero if it has no reliable clock, in which
	// case expires-on is not checked for a nonced voucher.
	Now time.Time

	// Assertions lists the acceptable assertions; nil means {Proximity},
	// the only kind Tumbler pledges request.
	Assertions []Assertion
}

// Validate applies the pledge's checks to a voucher whose COSE signature has
// been verified with the MASA's key (rfc8366bis YANG descriptions; RFC 8995
// §5.6.1; draft-ietf-anima-constrained-voucher-31):
//
//   - serial-number equals the pledge's (ErrSerialMismatch);
//   - the assertion is present and acceptable (ErrAssertion);
//   - the nonce equals the PVR's (ErrNonceMissing, ErrNonceMismatch); a
//     nonceless voucher needs expires-on and a clock (ErrMissingField);
//   - idevid-issuer, if present, equals the pledge's AKI
//     (ErrIssuerMismatch);
//   - expires-on, if present and the pledge has a clock, lies after Now
//     (ErrExpired); last-renewal-date requires expires-on
//     (ErrMissingField);
//   - a pinned-domain-cert, -pubk or -pubk-sha256 is present
//     (ErrPinMissing).
//
// The registrar's certificate is then checked with VerifyRegistrarPinned.
func (v *Voucher) Validate(opts PledgeCheck) error {
	if opts.SerialNumber == "" {
		return fmt.Errorf("%w: pledge serial-number", ErrMissingField)
	}
	if v.SerialNumber != opts.SerialNumber {
		return fmt.Errorf("%w: voucher says %q, pledge is %q", ErrSerialMismatch, v.SerialNumber, opts.SerialNumber)
	}
	allowed := opts.Assertions
	if allowed == nil {
		allowed = []Assertion{Proximity}
	}
	if a, ok := v.AssertionValue(); !ok || !slices.Contains(allowed, a) {
		return fmt.Errorf("%w: voucher assertion %s", ErrAssertion, assertionText(v.Assertion))
	}
	if opts.Nonce != nil {
		if v.Nonce == nil {
			return fmt.Errorf("%w: nonceless voucher for a nonced request", ErrNonceMissing)
		}
		if !bytes.Equal(v.Nonce, opts.Nonce) {
			return ErrNonceMismatch
		}
	} else {
		if v.Nonce != nil {
			return fmt.Errorf("%w: nonce in a voucher for a nonceless request", ErrNonceMismatch)
		}
		if v.ExpiresOn.IsZero() {
			return fmt.Errorf("%w: expires-on in a nonceless voucher", ErrMissingField)
		}
		if opts.Now.IsZero() {
			return fmt.Errorf("%w: a clock to check a nonceless voucher", ErrMissingField)
		}
	}
	if v.IDevIDIssuer != nil && !bytes.Equal(v.IDevIDIssuer, opts.IDevIDIssuer) {
		return ErrIssuerMismatch
	}
	if !v.ExpiresOn.IsZero() && !opts.Now.IsZero() && !opts.Now.Before(v.ExpiresOn) {
		return fmt.Errorf("%w: expires-on %s", ErrExpired, v.ExpiresOn.Format(time.RFC3339))
	}
	if !v.LastRenewalDate.IsZero() && v.ExpiresOn.IsZero() {
		return fmt.Errorf("%w: expires-on (last-renewal-date requires it)", ErrMissingField)
	}
	if v.PinnedDomainCert == nil && v.PinnedDomainPubK == nil && v.PinnedDomainPubKSHA256 == nil {
		return ErrPinMissing
	}
	return nil
}

// PinnedCert parses pinned-domain-cert. It fails with ErrPinMissing if the
// voucher pins no certificate and ErrMalformed if it does not parse.
func (v *Voucher) PinnedCert() (*x509.Certificate, error) {
	if v.PinnedDomainCert == nil {
		return nil, fmt.Errorf("%w: no pinned-domain-cert", ErrPinMissing)
	}
	c, err := x509.ParseCertificate(v.PinnedDomainCert)
	if err != nil {
		return nil, fmt.Errorf("%w: pinned-domain-cert: %w", ErrMalformed, err)
	}
	return c, nil
}

// VerifyRegistrarPinned checks that the registrar certificate chain the
// pledge accepted provisionally during the DTLS handshake (end-entity first,
// then any intermediates as sent) matches the voucher's pinned domain
// identity, which ends the provisional state (RFC 8995 §5.6.2;
// draft-ietf-anima-constrained-voucher-31 §"RPK Variant"). It succeeds if
// any pin present is satisfied:
//
//   - pinned-domain-pubk-sha256: SHA-256 of the end-entity's
//     SubjectPublicKeyInfo;
//   - pinned-domain-pubk: the end-entity's SubjectPublicKeyInfo;
//   - pinned-domain-cert: the end-entity itself, or a trust anchor the
//     end-entity chains to through the given intermediates (PKIX path
//     validation, any extended key usage).
//
// now is the pledge's clock for certificate validity periods; a pledge
// without a reliable clock passes the zero time, and validity is then
// checked at the end-entity's notBefore instant. It fails with
// ErrPinMissing if nothing is pinned and ErrPinMismatch otherwise.
func VerifyRegistrarPinned(v *Voucher, registrarChain []*x509.Certificate, now time.Time) error {
	if v == nil || len(registrarChain) == 0 || registrarChain[0] == nil {
		return fmt.Errorf("%w: voucher and registrar certificate are required", ErrMissingField)
	}
	ee := registrarChain[0]
	if v.PinnedDomainCert == nil && v.PinnedDomainPubK == nil && v.PinnedDomainPubKSHA256 == nil {
		return ErrPinMissing
	}
	if v.PinnedDomainPubKSHA256 != nil {
		sum := sha256.Sum256(ee.RawSubjectPublicKeyInfo)
		if bytes.Equal(v.PinnedDomainPubKSHA256, sum[:]) {
			return nil
		}
	}
	if v.PinnedDomainPubK != nil && bytes.Equal(v.PinnedDomainPubK, ee.RawSubjectPublicKeyInfo) {
		return nil
	}
	if v.PinnedDomainCert == nil {
		return fmt.Errorf("%w: public key pin", ErrPinMismatch)
	}
	pin, err := v.PinnedCert()
	if err != nil {
		return err
	}
	if pin.Equal(ee) {
		return nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(pin)
	inter := x509.NewCertPool()
	for _, c := range registrarChain[1:] {
		if c != nil {
			inter.AddCert(c)
		}
	}
	at := now
	if at.IsZero() {
		at = ee.NotBefore
	}
	if _, err := ee.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrPinMismatch, err)
	}
	return nil
}

// checkTimes applies the created-on and expires-on rules of the registrar
// and MASA.
func checkTimes(createdOn, expiresOn, now time.Time) error {
	if now.IsZero() {
		return fmt.Errorf("%w: current time", ErrMissingField)
	}
	if !createdOn.IsZero() && createdOn.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: created-on %s", ErrNotYetValid, createdOn.Format(time.RFC3339))
	}
	if !expiresOn.IsZero() && !now.Before(expiresOn) {
		return fmt.Errorf("%w: expires-on %s", ErrExpired, expiresOn.Format(time.RFC3339))
	}
	return nil
}
