package record

import (
	"bytes"
	"time"

	"github.com/tumbler-iot/tumbler/cose/voucher"
)

// Enroll body keys (docs/records.cddl enroll-body).
const (
	enrollLDevIDSerial   = 1
	enrollLDevIDNotAfter = 2
	enrollVoucherHash    = 3
	enrollMASAURL        = 4
	enrollAssertion      = 5
	enrollReEnrollment   = 6
	enrollLDevIDHash     = 7
)

// Limits of enroll-body fields.
const (
	maxCertSerial = 20 // RFC 5280 §4.1.2.2
	maxMASAURL    = 1024
)

// EnrollBody is the body of an "enroll" record: the gateway's EST server
// issued an LDevID, after a cBRSKI voucher exchange (initial enrollment,
// /sen) or to a device holding a current LDevID (re-enrollment, /sren, no
// voucher).
//
//	enroll-body = {
//	  1 => ldevid-serial,            ; bstr .size (1..20), no leading zero byte
//	  2 => unix-time,                ; LDevID notAfter
//	  7 => bstr .size 32,            ; SHA-256 of the LDevID certificate (DER)
//	  (
//	      3 => bstr .size 32,        ; SHA-256 of the voucher COSE_Sign1 as received from the MASA
//	      4 => tstr .size (1..1024), ; MASA URL
//	      5 => assertion,            ; 0..3
//	  //
//	      6 => true                  ; re-enrollment
//	  )
//	}
//
// docs/records.cddl; draft-ietf-anima-constrained-voucher-31 (voucher,
// assertion), RFC 9148 (/sen, /sren).
type EnrollBody struct {
	// LDevIDSerial is the LDevID certificate's serial number as a
	// big-endian magnitude without leading zero bytes
	// (cert.SerialNumber.Bytes()).
	LDevIDSerial []byte
	// LDevIDNotAfter is the LDevID's notAfter, in whole seconds.
	LDevIDNotAfter time.Time
	// LDevIDHash is the SHA-256 of the LDevID certificate (DER).
	LDevIDHash [32]byte

	// ReEnrollment is true for a /sren re-enrollment. The voucher fields
	// below are then unset (zero); otherwise MASAURL is required.
	ReEnrollment bool

	// VoucherHash is the SHA-256 of the voucher's COSE_Sign1 bytes exactly
	// as the registrar received them from the MASA.
	VoucherHash [32]byte
	// MASAURL is the URL of the MASA that issued the voucher.
	MASAURL string
	// Assertion is the voucher's assertion.
	Assertion voucher.Assertion
}

// RecordType returns TypeEnroll.
func (*EnrollBody) RecordType() Type { return TypeEnroll }

func (e *EnrollBody) encode() (Body, error) {
	w := newBodyWriter("enroll")
	if n := len(e.LDevIDSerial); n == 0 || n > maxCertSerial || e.LDevIDSerial[0] == 0 {
		w.fail(enrollLDevIDSerial, "serial of %d bytes (want 1..%d, no leading zero)", n, maxCertSerial)
	}
	w.bytes(enrollLDevIDSerial, e.LDevIDSerial)
	w.time(enrollLDevIDNotAfter, e.LDevIDNotAfter)
	w.bytes(enrollLDevIDHash, e.LDevIDHash[:])
	if e.ReEnrollment {
		if e.VoucherHash != ([32]byte{}) || e.MASAURL != "" || e.Assertion != 0 {
			w.fail(enrollReEnrollment, "voucher fields set on a re-enrollment")
		}
		w.boolTrue(enrollReEnrollment)
		return w.finish()
	}
	w.bytes(enrollVoucherHash, e.VoucherHash[:])
	w.text(enrollMASAURL, e.MASAURL, 1, maxMASAURL)
	if e.Assertion > voucher.AgentProximity {
		w.fail(enrollAssertion, "assertion %d not in 0..3", e.Assertion)
	}
	w.uint(enrollAssertion, uint64(e.Assertion))
	return w.finish()
}

func (e *EnrollBody) decode(b Body) error {
	f := &fieldReader{what: "enroll", b: b}
	var out EnrollBody
	out.LDevIDSerial = f.bytes(enrollLDevIDSerial, 1, maxCertSerial)
	if len(out.LDevIDSerial) > 0 && out.LDevIDSerial[0] == 0 {
		f.fail(enrollLDevIDSerial, "leading zero byte")
	}
	out.LDevIDNotAfter = f.time(enrollLDevIDNotAfter, false, false)
	out.LDevIDHash = f.hash(enrollLDevIDHash)
	if re := f.get(enrollReEnrollment, true); re != nil {
		if !bytes.Equal(re, []byte{cborTrue}) {
			f.fail(enrollReEnrollment, "not true")
		}
		out.ReEnrollment = true
	} else {
		out.VoucherHash = f.hash(enrollVoucherHash)
		out.MASAURL = f.text(enrollMASAURL, 1, maxMASAURL)
		a := f.uint(enrollAssertion)
		if a > uint64(voucher.AgentProximity) {
			f.fail(enrollAssertion, "assertion %d not in 0..3", a)
		}
		out.Assertion = voucher.Assertion(a)
	}
	f.closed()
	if err := f.finish(); err != nil {
		return err
	}
	*e = out
	return nil
}
