package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// MaxResponse is the largest response body a Client reads (a device with
// a long record chain is the largest).
const MaxResponse = 64 << 20

// Client calls the admin API, one method per route. Errors the API
// answers are *Error values, which match the ownership sentinels under
// errors.Is; other failures (network, ErrResponse) are returned as they
// are. A Client is safe for concurrent use.
type Client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string
	hc    *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*clientOptions) error

type clientOptions struct {
	hc    *http.Client
	roots *x509.CertPool
}

// WithHTTPClient sends requests with hc (its transport, its timeouts).
// The Client never follows redirects whatever hc's CheckRedirect says, so
// the token goes nowhere but the configured URL. It cannot be combined
// with WithRootCAs or WithCAFile.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(o *clientOptions) error {
		if hc == nil {
			return fmt.Errorf("%w: nil http.Client", ErrConfig)
		}
		o.hc = hc
		return nil
	}
}

// WithRootCAs trusts pool, instead of the system roots, for an https API.
func WithRootCAs(pool *x509.CertPool) ClientOption {
	return func(o *clientOptions) error {
		if pool == nil {
			return fmt.Errorf("%w: nil certificate pool", ErrConfig)
		}
		o.roots = pool
		return nil
	}
}

// WithCAFile trusts the PEM certificates in path, instead of the system
// roots, for an https API (e.g. the gateway's domain CA).
func WithCAFile(path string) ClientOption {
	return func(o *clientOptions) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%w: CA file: %v", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("%w: CA file %s: no PEM certificate in it", ErrConfig, path)
		}
		o.roots = pool
		return nil
	}
}

// NewClient returns a client of the API at baseURL (http:// only to a
// loopback host, else https://; a path prefix is kept) that sends token
// as its bearer token. An empty token reaches only the public routes.
func NewClient(baseURL, token string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: API URL %q does not parse", ErrConfig, baseURL)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: API URL %q: scheme must be https (or http to a loopback host)", ErrConfig, baseURL)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: API URL %q has no host", ErrConfig, baseURL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%w: API URL %q may not have user info, a query or a fragment", ErrConfig, baseURL)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return nil, fmt.Errorf("%w: API URL %q: http:// is only allowed to a loopback host (the token would cross the network in clear); use https", ErrConfig, baseURL)
	}
	if token != "" && !validToken(token) {
		return nil, fmt.Errorf("%w: token: may hold only letters, digits, '-', '.', '_', '~', '+', '/' and trailing '=', at most %d", ErrConfig, maxTokenLen)
	}
	var o clientOptions
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	var hc http.Client
	switch {
	case o.hc != nil && o.roots != nil:
		return nil, fmt.Errorf("%w: WithRootCAs and WithCAFile cannot be combined with WithHTTPClient", ErrConfig)
	case o.hc != nil:
		hc = *o.hc
	default:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.roots}
		hc.Transport = tr
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: &hc}, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// ListDevices calls GET /api/devices.
func (c *Client) ListDevices(ctx context.Context, f ownership.ListFilter) ([]ownership.DeviceView, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Overdue {
		q.Set("overdue", "true")
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out DeviceList
	err := c.call(ctx, http.MethodGet, "/api/devices", q, nil, &out)
	return out.Devices, err
}

// GetDevice calls GET /api/devices/{id}.
func (c *Client) GetDevice(ctx context.Context, id string) (ownership.DeviceDetail, error) {
	var out ownership.DeviceDetail
	err := c.call(ctx, http.MethodGet, devicePath(id, ""), nil, nil, &out)
	return out, err
}

// Expect calls POST /api/devices/expected.
func (c *Client) Expect(ctx context.Context, r ownership.ExpectRequest) (ownership.ExpectResult, error) {
	var out ownership.ExpectResult
	err := c.call(ctx, http.MethodPost, "/api/devices/expected", nil, r, &out)
	return out, err
}

// Transfer calls POST /api/devices/{id}/transfer.
func (c *Client) Transfer(ctx context.Context, id string, r ownership.TransferRequest) (ownership.TransferResult, error) {
	var out ownership.TransferResult
	err := c.call(ctx, http.MethodPost, devicePath(id, "/transfer"), nil, r, &out)
	return out, err
}

// Repossess calls POST /api/repossess.
func (c *Client) Repossess(ctx context.Context, r ownership.RepossessRequest) (ownership.RepossessResult, error) {
	var out ownership.RepossessResult
	err := c.call(ctx, http.MethodPost, "/api/repossess", nil, r, &out)
	return out, err
}

// Reset calls POST /api/devices/{id}/reset.
func (c *Client) Reset(ctx context.Context, id string, r ownership.ResetRequest) (Ack, error) {
	var out Ack
	err := c.call(ctx, http.MethodPost, devicePath(id, "/reset"), nil, r, &out)
	return out, err
}

// Decommission calls POST /api/devices/{id}/decommission.
func (c *Client) Decommission(ctx context.Context, id string, r ownership.DecommissionRequest) (Ack, error) {
	var out Ack
	err := c.call(ctx, http.MethodPost, devicePath(id, "/decommission"), nil, r, &out)
	return out, err
}

// Readmit calls POST /api/devices/{id}/readmit.
func (c *Client) Readmit(ctx context.Context, id string) (Ack, error) {
	var out Ack
	err := c.call(ctx, http.MethodPost, devicePath(id, "/readmit"), nil, struct{}{}, &out)
	return out, err
}

// Object calls POST /api/devices/{id}/object.
func (c *Client) Object(ctx context.Context, id string) (Ack, error) {
	var out Ack
	err := c.call(ctx, http.MethodPost, devicePath(id, "/object"), nil, struct{}{}, &out)
	return out, err
}

// Delegate calls POST /api/devices/{id}/delegations. The result's token
// is shown once.
func (c *Client) Delegate(ctx context.Context, id string, r ownership.DelegateRequest) (ownership.DelegateResult, error) {
	var out ownership.DelegateResult
	err := c.call(ctx, http.MethodPost, devicePath(id, "/delegations"), nil, r, &out)
	return out, err
}

// EndDelegation calls DELETE /api/devices/{id}/delegations/{delegation}.
func (c *Client) EndDelegation(ctx context.Context, id, delegation string) (Ack, error) {
	var out Ack
	err := c.call(ctx, http.MethodDelete, devicePath(id, "/delegations/"+url.PathEscape(delegation)), nil, nil, &out)
	return out, err
}

// Parked calls GET /api/parked (sink empty: every sink).
func (c *Client) Parked(ctx context.Context, sink string) ([]ownership.ParkedView, error) {
	q := url.Values{}
	if sink != "" {
		q.Set("sink", sink)
	}
	var out ParkedList
	err := c.call(ctx, http.MethodGet, "/api/parked", q, nil, &out)
	return out.Parked, err
}

// CRL calls GET /crl and returns the DER CRL.
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/crl", "application/pkix-crl")
}

// Metrics calls GET /metrics and returns the Prometheus exposition.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/metrics", "")
}

// Health calls GET /healthz: nil when the gateway is healthy.
func (c *Client) Health(ctx context.Context) error {
	var out Health
	return c.call(ctx, http.MethodGet, "/healthz", nil, nil, &out)
}

// devicePath is /api/devices/{id}{suffix}.
func devicePath(id, suffix string) string {
	return "/api/devices/" + url.PathEscape(id) + suffix
}

// call sends in (if not nil) as JSON and decodes a JSON success into out.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("api: encoding the %s %s request: %w", method, path, err)
		}
	}
	h, data, err := c.do(ctx, method, path, q, body, "application/json")
	if err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("%w: %s %s: Content-Type %q, want application/json", ErrResponse, method, path, h.Get("Content-Type"))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrResponse, method, path, err)
	}
	return nil
}

// raw GETs path and returns the body, checking its media type if want is
// set.
func (c *Client) raw(ctx context.Context, path, want string) ([]byte, error) {
	accept := want
	if accept == "" {
		accept = "*/*"
	}
	h, data, err := c.do(ctx, http.MethodGet, path, nil, nil, accept)
	if err != nil {
		return nil, err
	}
	if want != "" {
		if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != want {
			return nil, fmt.Errorf("%w: GET %s: Content-Type %q, want %s", ErrResponse, path, h.Get("Content-Type"), want)
		}
	}
	return data, nil
}

// do sends one request and reads the response; a non-2xx status is an
// *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, accept string) (http.Header, []byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("api: %s %s: reading the response: %w", method, path, err)
	}
	if len(data) > MaxResponse {
		return nil, nil, fmt.Errorf("%w: %s %s: response larger than %d bytes", ErrResponse, method, path, MaxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, responseError(resp, data)
	}
	return resp.Header, data, nil
}

// responseError builds the *Error of a failed response: the "error" of a
// JSON body, else the start of a text body, else the status text.
func responseError(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		var b errorBody
		if json.Unmarshal(data, &b) == nil && b.Error != "" {
			e.Message = b.Error
			return e
		}
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		e.Message = "redirected to " + clip(loc) + " (not followed)"
		return e
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	line = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, line)
	if line = strings.TrimSpace(clip(line)); line != "" {
		e.Message = line
	}
	return e
}
