package masa

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tumbler-iot/tumbler/cose/transfer"
)

// Media types for a COSE-signed voucher (request). cBRSKI -23+ names CF 836
// application/voucher+cose; OT-Registrar and the Sandelman implementations
// still send the earlier name of the same format (spec/cbrski.md §9 pitfall 1).
const (
	MediaVoucherCOSE       = "application/voucher+cose"
	MediaVoucherCOSELegacy = "application/voucher-cose+cbor"
	mediaCOSE              = "application/cose"
)

// Handler returns the MASA's HTTP API. Requests must arrive over TLS with a
// client certificate (see ServeTLS).
func (m *MASA) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathRequestVoucher, m.serveVoucher)
	mux.HandleFunc("POST "+PathRequestAuditLog, m.serveAudit)
	mux.HandleFunc("POST "+PathTransfer, m.serveOwnership)
	mux.HandleFunc("POST "+PathRepossess, m.serveOwnership)
	mux.HandleFunc("POST "+PathObject, m.serveOwnership)
	mux.HandleFunc("POST "+PathClaims, m.serveOwnership)
	return mux
}

// serveOwnership takes the ownership documents (application/cose): a
// transfer authorisation (204), a repossession claim (202 with the end of
// the notice period as JSON), an objection (204).
func (m *MASA) serveOwnership(w http.ResponseWriter, r *http.Request) {
	if !acceptedRequestType(r.Header.Get("Content-Type")) {
		m.fail(w, r, ErrMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequest))
	if err != nil {
		m.fail(w, r, ErrMalformed)
		return
	}
	switch r.URL.Path {
	case PathTransfer:
		if _, err := m.RegisterTransfer(body, clientCert(r)); err != nil {
			m.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case PathRepossess:
		until, err := m.RegisterClaim(body, clientCert(r))
		if err != nil {
			m.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]time.Time{"notice_until": until})
	case PathObject:
		if err := m.RegisterObjection(body, clientCert(r)); err != nil {
			m.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case PathClaims:
		claims, err := m.Claims(body, clientCert(r))
		if err != nil {
			m.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string][]transfer.ClaimNotice{"claims": claims})
	}
}

func (m *MASA) serveVoucher(w http.ResponseWriter, r *http.Request) {
	body, resp, ok := m.readRequest(w, r)
	if !ok {
		return
	}
	v, err := m.RequestVoucher(r.Context(), body, clientCert(r))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", resp)
	w.WriteHeader(http.StatusOK)
	w.Write(v)
}

func (m *MASA) serveAudit(w http.ResponseWriter, r *http.Request) {
	body, _, ok := m.readRequest(w, r)
	if !ok {
		return
	}
	ev, err := m.AuditLog(r.Context(), body, clientCert(r))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(renderAudit(ev))
}

// readRequest checks the media types and reads a size-capped body. It
// returns the response media type to use (the name the client asked for).
func (m *MASA) readRequest(w http.ResponseWriter, r *http.Request) ([]byte, string, bool) {
	if !acceptedRequestType(r.Header.Get("Content-Type")) {
		m.fail(w, r, ErrMediaType)
		return nil, "", false
	}
	resp, ok := responseType(r.Header.Get("Accept"))
	if !ok {
		m.fail(w, r, ErrNotAcceptable)
		return nil, "", false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequest))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "voucher-request too large", http.StatusRequestEntityTooLarge)
			return nil, "", false
		}
		m.fail(w, r, ErrMalformed)
		return nil, "", false
	}
	return body, resp, true
}

func acceptedRequestType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case MediaVoucherCOSE, MediaVoucherCOSELegacy:
		return true
	case mediaCOSE:
		t, ok := params["cose-type"]
		return !ok || t == "cose-sign1"
	}
	return false
}

// responseType picks the voucher media type for an Accept header: the legacy
// name if that is what the client asked for, else the current one.
func responseType(accept string) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return MediaVoucherCOSE, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case MediaVoucherCOSE, "*/*", "application/*":
			return MediaVoucherCOSE, true
		case MediaVoucherCOSELegacy:
			return MediaVoucherCOSELegacy, true
		}
	}
	return "", false
}

// status maps an error to its HTTP status (RFC 8995 §5.6: 403 for a refusal
// of policy or authentication, 404 for an unknown device, 406/415 for
// formats, 400 for a malformed request).
func status(err error) int {
	switch {
	case errors.Is(err, ErrMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrNotAcceptable):
		return http.StatusNotAcceptable
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownDevice):
		return http.StatusNotFound
	case errors.Is(err, ErrRegistrar), errors.Is(err, ErrPledge), errors.Is(err, ErrOwned),
		errors.Is(err, ErrAuthorization), errors.Is(err, ErrClaim):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// fail answers with the status of err and a one-line reason naming the
// sentinel (never the wrapped detail, which goes to the log).
func (m *MASA) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := status(err)
	reason := "internal error"
	if code < 500 {
		// The refusal's own words (sentinel and detail) help an operator
		// fix it; they reveal nothing the requester does not know.
		reason = err.Error()
		if strings.HasPrefix(reason, "masa: ") {
			reason = reason[len("masa: "):]
		}
	}
	ev := m.log.Warn()
	if code >= 500 {
		ev = m.log.Error()
	}
	ev.Err(err).Int("status", code).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Msg("voucher request refused")
	http.Error(w, reason, code)
}

func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}
