package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// handlerFunc is a route handler; a returned error is answered by fail.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// caller is who a request authenticated as.
type caller struct {
	admin int      // index of the admin token, -1 for a delegation token
	scope []string // device ids a delegation token may read
}

// public serves h to anyone.
func (s *Server) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, err)
		}
	})
}

// adminOnly serves h to admin tokens; a valid delegation token is 403.
func (s *Server) adminOnly(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(w, r)
		if err == nil && c.admin < 0 {
			err = errForbidden
		}
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			s.fail(w, err)
		}
	})
}

// anyCaller serves h to admin and delegation tokens alike; h learns who
// called and limits what it shows.
func (s *Server) anyCaller(h func(http.ResponseWriter, *http.Request, caller) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(w, r)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.fail(w, err)
		}
	})
}

// deviceReader serves h to admin tokens, and to delegation tokens whose
// scope holds the {id} of the path; h learns who called.
func (s *Server) deviceReader(h func(http.ResponseWriter, *http.Request, caller) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(w, r)
		if err == nil && c.admin < 0 {
			id := strings.ToLower(r.PathValue("id"))
			if !slices.ContainsFunc(c.scope, func(d string) bool { return strings.EqualFold(d, id) }) {
				err = errForbidden
			}
		}
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.fail(w, err)
		}
	})
}

// authenticate reads the bearer token. Admin tokens are compared by
// SHA-256 digest in constant time against every configured token (no
// early exit); any other well-formed token goes to the service's Scope.
// On a 401 it sets WWW-Authenticate (RFC 6750 §3).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (caller, error) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tumbler"`)
		return caller{}, errNoToken
	}
	reject := func(cause error) (caller, error) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tumbler", error="invalid_token"`)
		return caller{}, &httpError{status: http.StatusUnauthorized, msg: "invalid token", cause: cause}
	}
	if !validToken(token) {
		return reject(errors.New("malformed token"))
	}
	sum := sha256.Sum256([]byte(token))
	found, index := 0, 0
	for i := range s.admins {
		eq := subtle.ConstantTimeCompare(sum[:], s.admins[i][:])
		index = subtle.ConstantTimeSelect(eq, i, index)
		found |= eq
	}
	if found == 1 {
		setCaller(w, "admin["+strconv.Itoa(index)+"]")
		return caller{admin: index}, nil
	}
	scope, err := s.svc.Scope(r.Context(), token)
	switch {
	case errors.Is(err, ownership.ErrUnauthorized):
		return reject(err)
	case err != nil:
		return caller{}, err
	}
	setCaller(w, "delegation")
	return caller{admin: -1, scope: scope}, nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" header
// (the scheme is case-insensitive).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// setCaller notes who called, for the request log.
func setCaller(w http.ResponseWriter, who string) {
	if sw, ok := w.(*statusWriter); ok {
		sw.caller = who
	}
}
