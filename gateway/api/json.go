package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
)

// MaxBody is the largest request body the API reads (413 beyond).
const MaxBody = 1 << 20

// errorBody is every error response: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON sends v as the JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		if sw, ok := w.(*statusWriter); ok {
			sw.cause = fmt.Errorf("encoding the response: %w", err)
		}
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError sends {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fail answers err: the status and text of an *httpError, or of the
// ownership sentinel err matches (statusOf). The whole err is kept for
// the request log.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var he *httpError
	var status int
	var msg string
	if errors.As(err, &he) {
		status, msg = he.status, he.msg
	} else {
		status, msg = statusOf(err)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.cause = err
	}
	writeError(w, status, msg)
}

// decodeBody decodes r's body into v strictly: Content-Type
// application/json (or none), at most MaxBody bytes, exactly one JSON
// value, no unknown members. An empty body leaves v as it is when
// optional is set, and is an error otherwise. Errors name the member.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &httpError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("invalid request: Content-Type %q is not application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("invalid request: body larger than %d bytes", MaxBody)}
		}
		return &httpError{status: http.StatusBadRequest, msg: "invalid request: reading the body failed", cause: err}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if optional {
			return nil
		}
		return invalid("empty body; a JSON object is required")
	}
	if bytes.Equal(trimmed, []byte("null")) {
		return invalid("the body must be a JSON object, not null")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(body, reflect.TypeOf(v), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("the body must hold exactly one JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a 400 naming the member.
func jsonError(body []byte, t reflect.Type, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("truncated JSON")
	case errors.As(err, &typ) && typ.Field == "":
		return invalid("the body must be a JSON object, not %s", typ.Value)
	case errors.As(err, &typ):
		return invalid("field %q: %s is not %s", typ.Field, typ.Value, kindOf(typ.Type))
	}
	// The rest carry no member name: unknown members, and values whose
	// own decoder failed (times, base64). Find the member.
	path, ft, cause := locate(body, t)
	switch {
	case errors.Is(cause, errUnknownMember):
		return invalid("unknown field %q", path)
	case cause != nil:
		return invalid("field %q: %s", path, describe(ft, cause))
	}
	return invalid("%s", strings.TrimPrefix(err.Error(), "json: "))
}

// errUnknownMember marks a member that names no field.
var errUnknownMember = errors.New("unknown field")

// locate walks the JSON object data against struct type t, in document
// order, and returns the path ("upstream.mqtt.url") of the first member
// that is unknown or whose value does not decode, with the member's type
// and the error.
func locate(data []byte, t reflect.Type) (string, reflect.Type, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == timeType {
		return "", nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil, nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil, nil
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", nil, nil
		}
		ft, ok := fieldType(t, key)
		if !ok {
			return key, nil, errUnknownMember
		}
		fd := json.NewDecoder(bytes.NewReader(raw))
		fd.DisallowUnknownFields()
		if err := fd.Decode(reflect.New(ft).Interface()); err != nil {
			if sub, st, cause := locate(raw, ft); cause != nil {
				return key + "." + sub, st, cause
			}
			return key, ft, err
		}
	}
	return "", nil, nil
}

var timeType = reflect.TypeFor[time.Time]()

// fieldType is the type of t's field that encoding/json decodes member
// key into: the exact JSON name, else a case-insensitive match, looking
// into embedded structs.
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	var fold reflect.Type
	var walk func(t reflect.Type) (reflect.Type, bool)
	walk = func(t reflect.Type) (reflect.Type, bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					if ft, ok := walk(et); ok {
						return ft, true
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if name == key {
				return f.Type, true
			}
			if fold == nil && strings.EqualFold(name, key) {
				fold = f.Type
			}
		}
		return nil, false
	}
	if ft, ok := walk(t); ok {
		return ft, true
	}
	return fold, fold != nil
}

// kindOf names the JSON a Go type wants, for messages.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return "an RFC 3339 time string"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "a base64 string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}

// describe words the error of decoding a member of type t.
func describe(t reflect.Type, err error) string {
	var pe *time.ParseError
	var be base64.CorruptInputError
	switch {
	case errors.As(err, &pe):
		return fmt.Sprintf("%q is not an RFC 3339 time", pe.Value)
	case errors.As(err, &be):
		return fmt.Sprintf("not base64 (bad input at byte %d)", int64(be))
	case t == timeType:
		return "not " + kindOf(t)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// queryParams parses r's query, allowing only the named parameters, each
// at most once.
func queryParams(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, invalid("malformed query: %v", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return nil, invalid("unknown query parameter %q (allowed: %s)", clip(k), strings.Join(allowed, ", "))
		}
		if len(q[k]) > 1 {
			return nil, invalid("query parameter %q given %d times", k, len(q[k]))
		}
	}
	return q, nil
}

// deviceIDLen is the length of a device id: hex SHA-256 of the IDevID.
const deviceIDLen = 64

// deviceID is the {id} of the path, lower-cased: 64 hex digits.
func deviceID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if len(id) != deviceIDLen || strings.IndexFunc(id, notHex) >= 0 {
		return "", invalid("device id %q is not %d hex digits (the SHA-256 of its IDevID)", clip(id), deviceIDLen)
	}
	return strings.ToLower(id), nil
}

// maxDelegationIDLen bounds the {delegation} of a path.
const maxDelegationIDLen = 128

// delegationID is the {delegation} of the path: 1 to 128 printable
// characters.
func delegationID(r *http.Request) (string, error) {
	d := r.PathValue("delegation")
	if d == "" || len(d) > maxDelegationIDLen || strings.IndexFunc(d, func(c rune) bool { return !unicode.IsPrint(c) || c == ' ' }) >= 0 {
		return "", invalid("delegation id %q is not 1 to %d printable characters", clip(d), maxDelegationIDLen)
	}
	return d, nil
}

func notHex(c rune) bool {
	return !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')
}

// clip shortens s to quote it in a message.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
