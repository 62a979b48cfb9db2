// Package api is the gateway's admin HTTP API: JSON in front of an
// ownership.Service, plus the public CRL and health check and the
// Prometheus metrics. Client is its Go client; `tumbler device` is built
// on it.
//
// # Routes
//
//	GET    /api/devices?state=S&overdue=true&limit=N       admin       200 DeviceList
//	GET    /api/devices/{id}                               admin, or a delegation token for {id}
//	                                                                   200 ownership.DeviceDetail
//	POST   /api/devices/expected                           admin       201 ownership.ExpectResult
//	POST   /api/devices/{id}/transfer                      admin       200 ownership.TransferResult
//	POST   /api/repossess                                  admin       200 ownership.RepossessResult
//	POST   /api/devices/{id}/reset                         admin       202 Ack (pending), 200 when immediate
//	POST   /api/devices/{id}/decommission                  admin       200 Ack
//	POST   /api/devices/{id}/readmit                       admin       200 Ack
//	POST   /api/devices/{id}/object                        admin       200 Ack
//	POST   /api/devices/{id}/delegations                   admin       201 ownership.DelegateResult, Location
//	DELETE /api/devices/{id}/delegations/{delegation}      admin       200 Ack
//	GET    /api/parked?sink=S                              admin       200 ParkedList
//	GET    /crl                                            public      200 application/pkix-crl (DER)
//	GET    /healthz                                        public      200 Health, 503 when WithHealth fails
//	GET    /metrics                                        admin, or public with Config.PublicMetrics
//
// Request bodies are the request types of package ownership. Device ids
// are the 64 hex digits of the SHA-256 of the IDevID (either case; the
// service sees lower case). The bodies of reset and decommission are
// optional (absent: the zero request); readmit and object take none or {}.
//
// # Authentication
//
// Every /api route, and /metrics unless Config.PublicMetrics, needs
// "Authorization: Bearer <token>". An admin token (Config.Tokens) may call
// everything. It is checked by comparing its SHA-256 with that of every
// configured token in constant time, with no early exit, so neither the
// match nor its position nor the length leaks through timing. Any other
// well-formed token is given to ownership.Service.Scope: a delegation
// token may read GET /api/devices/{id} for the ids in its scope, and GET
// /api/devices lists just those, and nothing else (403); its view of a
// device leaves out the device's delegations, which name the other
// delegates, and repossession claims, which are between owners. No token, or one neither accepts, is 401 with
// WWW-Authenticate: Bearer (RFC 6750 §3). /crl and /healthz are public.
//
// /metrics needs an admin token by default: the metrics name no devices,
// but they show traffic and backlog, and Prometheus can send a bearer
// token (scrape_config authorization.credentials_file). Set
// public_metrics: true where a scraper cannot.
//
// # Responses and errors
//
// Every response but /crl and /metrics is JSON (Content-Type
// application/json, Cache-Control no-store); errors are
// {"error": "..."}. Request bodies are decoded strictly: Content-Type
// application/json (or none, else 415), at most MaxBody bytes (else 413),
// exactly one JSON value, no unknown members; the 400 names the member
// (`invalid request: field "not_after": "tomorrow" is not an RFC 3339
// time`). Errors of the service map to one status each:
//
//	ownership.ErrInvalid      400   the service's message
//	ownership.ErrUnauthorized 401   "unauthorized"
//	ownership.ErrRefused      403   the service's message
//	ownership.ErrNotFound     404   the service's message
//	ownership.ErrConflict     409   the service's message
//	ownership.ErrUnavailable  503   "MASA unavailable"
//	anything else             500   "internal error"
//
// The full error is logged (warn, with the request line), never sent for
// a 5xx. Unknown routes are 404 and known routes with another method 405
// (with Allow), both in JSON. Each request is logged once: method, path,
// route, status, duration, bytes, remote address and caller ("admin[i]",
// the index of the admin token, or "delegation"); never the token.
//
// # Serving
//
// Serve runs an http.Server with header, read, write and idle timeouts
// on a listener the caller opens, HTTPS (TLS 1.2+) when Config names a
// certificate, and warns when it serves plain HTTP on a non-loopback
// address. Client refuses http:// to anything but a loopback host.
package api
