package registrar

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tumbler-iot/tumbler/cose/transfer"
)

// MASAClient sends a registrar voucher-request to a MASA and returns the
// signed voucher.
type MASAClient interface {
	RequestVoucher(ctx context.Context, masaURL string, rvr []byte) ([]byte, error)
}

// MASAError is a MASA's HTTP refusal, mirrored to the pledge as the CoAP
// code of cBRSKI -31 §"CoAP Responses" (401/403/404/406/415 map to 4.0x).
type MASAError struct {
	Status int
	Reason string
}

func (e *MASAError) Error() string { return fmt.Sprintf("MASA answered %d: %s", e.Status, e.Reason) }

// HTTPMASA is the BRSKI-MASA client of RFC 8995 §5.5 over HTTPS: the
// registrar's certificate is its TLS client certificate, the MASA's server
// certificate is checked against roots and the URL's host name (DNS-ID),
// and the SNI is sent.
type HTTPMASA struct {
	client *http.Client
}

// MaxVoucher caps a voucher response body.
const MaxVoucher = 64 << 10

// NewHTTPMASA builds the client. roots are the trust anchors for MASA server
// certificates (nil: the system roots).
func NewHTTPMASA(cert tls.Certificate, roots *x509.CertPool, timeout time.Duration) *HTTPMASA {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      roots,
			MinVersion:   tls.VersionTLS12,
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &HTTPMASA{client: &http.Client{Transport: tr, Timeout: timeout}}
}

// RequestVoucher POSTs rvr to masaURL's /.well-known/brski/requestvoucher.
// A MASA refusal is a *MASAError; anything else (no connection, timeout, a
// 5xx) wraps ErrMASAUnavailable.
func (c *HTTPMASA) RequestVoucher(ctx context.Context, masaURL string, rvr []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(masaURL, "/")+"/.well-known/brski/requestvoucher", bytes.NewReader(rvr))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMASAUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/voucher+cose")
	req.Header.Set("Accept", "application/voucher+cose")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMASAUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxVoucher+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading response: %w", ErrMASAUnavailable, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if len(body) > MaxVoucher {
			return nil, fmt.Errorf("%w: voucher larger than %d bytes", ErrBadVoucher, MaxVoucher)
		}
		return body, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusAccepted:
		// 202 is BRSKI's "retry later" (RFC 8995 §5.6); the pledge retries.
		return nil, fmt.Errorf("%w: HTTP %d", ErrMASAUnavailable, resp.StatusCode)
	default:
		reason := strings.TrimSpace(string(body))
		if len(reason) > 120 {
			reason = reason[:120]
		}
		return nil, &MASAError{Status: resp.StatusCode, Reason: reason}
	}
}

// CloseIdle closes idle connections.
func (c *HTTPMASA) CloseIdle() { c.client.CloseIdleConnections() }

// AuditEvent is an entry of a MASA's audit log (RFC 8995 §5.8.1).
type AuditEvent struct {
	Date      string  `json:"date"`
	DomainID  string  `json:"domainID"`
	Nonce     *string `json:"nonce"`
	Assertion string  `json:"assertion"`
}

// post sends a COSE document to a MASA path and returns the response body.
func (c *HTTPMASA) post(ctx context.Context, masaURL, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(masaURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrMASAUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/voucher+cose")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrMASAUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrMASAUnavailable, err)
	}
	if resp.StatusCode >= 500 {
		return resp.StatusCode, nil, fmt.Errorf("%w: HTTP %d", ErrMASAUnavailable, resp.StatusCode)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, nil, &MASAError{Status: resp.StatusCode, Reason: strings.TrimSpace(string(b))}
	}
	return resp.StatusCode, b, nil
}

// RegisterTransfer registers a transfer authorisation with the MASA.
func (c *HTTPMASA) RegisterTransfer(ctx context.Context, masaURL string, authz []byte) error {
	_, _, err := c.post(ctx, masaURL, "/.well-known/tumbler/transfer", authz)
	return err
}

// Claim registers a repossession claim and returns the end of the MASA's
// notice period.
func (c *HTTPMASA) Claim(ctx context.Context, masaURL string, claim []byte) (time.Time, error) {
	_, b, err := c.post(ctx, masaURL, "/.well-known/tumbler/repossess", claim)
	if err != nil {
		return time.Time{}, err
	}
	var v struct {
		NoticeUntil time.Time `json:"notice_until"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.NoticeUntil.IsZero() {
		return time.Time{}, fmt.Errorf("%w: claim answer %q", ErrMASAUnavailable, b)
	}
	return v.NoticeUntil, nil
}

// Object sends the owner's objection to a repossession claim.
func (c *HTTPMASA) Object(ctx context.Context, masaURL string, objection []byte) error {
	_, _, err := c.post(ctx, masaURL, "/.well-known/tumbler/object", objection)
	return err
}

// Claims asks the MASA for its claims feed with a claims query signed by
// this domain's registrar.
func (c *HTTPMASA) Claims(ctx context.Context, masaURL string, query []byte) ([]transfer.ClaimNotice, error) {
	_, b, err := c.post(ctx, masaURL, "/.well-known/tumbler/claims", query)
	if err != nil {
		return nil, err
	}
	var v struct {
		Claims []transfer.ClaimNotice `json:"claims"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: claims feed: %v", ErrMASAUnavailable, err)
	}
	return v.Claims, nil
}

// AuditLog asks the MASA for a device's audit log with a registrar
// voucher-request this domain sent for it (RFC 8995 §5.8).
func (c *HTTPMASA) AuditLog(ctx context.Context, masaURL string, rvr []byte) ([]AuditEvent, error) {
	_, b, err := c.post(ctx, masaURL, "/.well-known/brski/requestauditlog", rvr)
	if err != nil {
		return nil, err
	}
	var v struct {
		Events []AuditEvent `json:"events"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: audit log: %v", ErrMASAUnavailable, err)
	}
	return v.Events, nil
}
