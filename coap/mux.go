package coap

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// WellKnownCore is the RFC 6690 discovery resource.
const WellKnownCore = "/.well-known/core"

// Link describes a resource for /.well-known/core (RFC 6690 link-format).
type Link struct {
	// Attrs are link attributes in output order, e.g. {"rt", "brski.rv"},
	// {"ct", "836"}. A value containing a space is quoted on output.
	Attrs [][2]string
	// Hidden resources are served but not listed.
	Hidden bool
}

type route struct {
	path    string
	methods []codes.Code
	h       Handler
	link    Link
}

// Mux routes requests by exact path and method and serves
// /.well-known/core from what was registered. It answers 4.04 for an unknown
// path and 4.05 for a known path with a method it does not serve.
type Mux struct {
	mu     sync.RWMutex
	routes map[string]*route
	order  []string
	// base links listed first in discovery (e.g. "</.well-known/brski>;rt=brski").
	extra []string
}

// NewMux returns an empty Mux that answers /.well-known/core.
func NewMux() *Mux { return &Mux{routes: make(map[string]*route)} }

// Handle registers h for path and the given methods (GET if none).
// Registering the same path twice panics: it is a programming error.
func (m *Mux) Handle(path string, h Handler, link Link, methods ...codes.Code) {
	if !strings.HasPrefix(path, "/") {
		panic(fmt.Sprintf("coap: path %q must start with /", path))
	}
	if len(methods) == 0 {
		methods = []codes.Code{codes.GET}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.routes[path]; dup {
		panic(fmt.Sprintf("coap: path %q registered twice", path))
	}
	m.routes[path] = &route{path: path, methods: methods, h: h, link: link}
	m.order = append(m.order, path)
}

// HandleFunc is Handle for a function.
func (m *Mux) HandleFunc(path string, f func(context.Context, *Request) (*Response, error), link Link, methods ...codes.Code) {
	m.Handle(path, HandlerFunc(f), link, methods...)
}

// AddLink lists a link that has no handler of its own (a base resource such
// as "</.well-known/brski>;rt=brski").
func (m *Mux) AddLink(path string, attrs ...[2]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.extra = append(m.extra, formatLink(path, attrs))
}

// ServeCoAP routes r.
func (m *Mux) ServeCoAP(ctx context.Context, r *Request) (*Response, error) {
	if r.Path == WellKnownCore {
		if r.Method != codes.GET {
			return nil, Errorf(codes.MethodNotAllowed, "only GET on /.well-known/core", nil)
		}
		return Content(FormatLinkFormat, []byte(m.Links(r.Query))), nil
	}
	m.mu.RLock()
	rt, ok := m.routes[r.Path]
	m.mu.RUnlock()
	if !ok {
		return nil, Errorf(codes.NotFound, "no such resource", nil)
	}
	for _, meth := range rt.methods {
		if meth == r.Method {
			return rt.h.ServeCoAP(ctx, r)
		}
	}
	return nil, Errorf(codes.MethodNotAllowed, "method not allowed on "+r.Path, nil)
}

// Links renders the link-format document, filtered by RFC 6690 §4.1 query
// parameters ("rt=brski*", "href=/x", "ct=836"). A trailing '*' matches a
// prefix.
func (m *Mux) Links(query []string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	if len(query) == 0 {
		out = append(out, m.extra...)
	} else {
		for _, l := range m.extra {
			if matchLinkString(l, query) {
				out = append(out, l)
			}
		}
	}
	for _, p := range m.order {
		rt := m.routes[p]
		if rt.link.Hidden {
			continue
		}
		if !matchLink(p, rt.link.Attrs, query) {
			continue
		}
		out = append(out, formatLink(p, rt.link.Attrs))
	}
	return strings.Join(out, ",")
}

func formatLink(path string, attrs [][2]string) string {
	var b strings.Builder
	b.WriteString("<" + path + ">")
	for _, a := range attrs {
		b.WriteString(";" + a[0])
		if a[1] == "" {
			continue
		}
		b.WriteString("=")
		if strings.ContainsAny(a[1], " ,;") {
			b.WriteString(`"` + a[1] + `"`)
		} else {
			b.WriteString(a[1])
		}
	}
	return b.String()
}

func matchLink(path string, attrs [][2]string, query []string) bool {
	for _, q := range query {
		name, want, ok := strings.Cut(q, "=")
		if !ok {
			continue
		}
		if name == "href" {
			if !matchValue(path, want) {
				return false
			}
			continue
		}
		found := false
		for _, a := range attrs {
			if a[0] != name {
				continue
			}
			for _, v := range strings.Fields(a[1]) {
				if matchValue(v, want) {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// matchLinkString applies query filters to an already formatted link.
func matchLinkString(link string, query []string) bool {
	path, rest, _ := strings.Cut(strings.TrimPrefix(link, "<"), ">")
	var attrs [][2]string
	for _, p := range strings.Split(rest, ";") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		attrs = append(attrs, [2]string{k, strings.Trim(v, `"`)})
	}
	return matchLink(path, attrs, query)
}

func matchValue(have, want string) bool {
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(have, p)
	}
	return have == want
}
