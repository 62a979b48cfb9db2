package oscore

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Option numbers with OSCORE processing of their own (RFC 8613 §4.1,
// Figure 5; RFC 9175 for Echo and Request-Tag; RFC 9668 for EDHOC).
const (
	optURIHost     message.OptionID = 3
	optObserve     message.OptionID = 6
	optURIPort     message.OptionID = 7
	optURIPath     message.OptionID = 11
	optContentFmt  message.OptionID = 12
	optMaxAge      message.OptionID = 14
	optURIQuery    message.OptionID = 15
	optAccept      message.OptionID = 17
	optEDHOC       message.OptionID = 21
	optProxyURI    message.OptionID = 35
	optProxyScheme message.OptionID = 39
	optEcho        message.OptionID = echoOptionID
)

// classUOnly reports whether an option is only ever an Outer (Class U)
// option: Uri-Host, Uri-Port, Proxy-Uri, Proxy-Scheme (§4.1.3.2, §4.1.3.3),
// OSCORE itself (§4.1.3.7) and EDHOC (RFC 9668 §3.1). Every other option,
// including unknown ones, is Class E (§4.1); Observe is both (§4.1.3.5).
// A receiver keeps only these from the outer message and discards the outer
// instances of all Class E options (§8.2 step 1, §8.4 step 1), which covers
// outer Block1/Block2/Size1/Size2 left by a proxy, outer Max-Age, outer
// Observe, outer No-Response and outer Echo/Request-Tag.
func classUOnly(id message.OptionID) bool {
	switch id {
	case optURIHost, optURIPort, OptionNumber, optProxyURI, optProxyScheme, optEDHOC:
		return true
	}
	return false
}

// sortedOptions returns opts sorted by option number, keeping the order of
// repeated options; it copies only when opts is not sorted already.
func sortedOptions(opts message.Options) message.Options {
	if slices.IsSortedFunc(opts, cmpOption) {
		return opts
	}
	s := slices.Clone(opts)
	slices.SortStableFunc(s, cmpOption)
	return s
}

func cmpOption(a, b message.Option) int { return int(a.ID) - int(b.ID) }

// split separates the options of an original message into Inner (Class E)
// and Outer (Class U) options (§4.1). Observe goes to both; Proxy-Uri is
// decomposed (§4.1.3.3). It rejects an OSCORE option (§4.1.3.7).
func split(opts message.Options, request bool) (inner, outer message.Options, err error) {
	opts = sortedOptions(opts)
	inner = make(message.Options, 0, len(opts)+2)
	outer = make(message.Options, 0, 4)
	var proxyURI []byte
	for _, o := range opts {
		switch {
		case o.ID == OptionNumber:
			return nil, nil, ErrNested
		case o.ID == optProxyURI && request:
			if proxyURI != nil {
				return nil, nil, fmt.Errorf("%w: Proxy-Uri repeated", ErrInvalidMessage)
			}
			proxyURI = o.Value
		case o.ID == optObserve:
			inner = append(inner, o)
			outer = append(outer, o)
		case classUOnly(o.ID):
			outer = append(outer, o)
		default:
			inner = append(inner, o)
		}
	}
	if proxyURI != nil {
		if inner, outer, err = decomposeProxyURI(string(proxyURI), inner, outer); err != nil {
			return nil, nil, err
		}
	}
	return inner, outer, nil
}

// decomposeProxyURI splits Proxy-Uri (§4.1.3.3, RFC 7252 §6.4): Uri-Path
// and Uri-Query become Inner options; the Outer Proxy-Uri keeps scheme,
// host and port only (RFC 7252 §6.5).
func decomposeProxyURI(raw string, inner, outer message.Options) (message.Options, message.Options, error) {
	for _, o := range slices.Concat(inner, outer) {
		switch o.ID {
		case optURIHost, optURIPort, optURIPath, optURIQuery:
			return nil, nil, fmt.Errorf("%w: Proxy-Uri together with Uri-* options (RFC 7252 §5.10.2)", ErrInvalidMessage)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Proxy-Uri: %w", ErrInvalidMessage, err)
	}
	if !u.IsAbs() || u.Host == "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return nil, nil, fmt.Errorf("%w: Proxy-Uri %q is not an absolute URI without fragment", ErrInvalidMessage, raw)
	}
	if p := u.EscapedPath(); p != "" && p != "/" {
		for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			v, err := url.PathUnescape(seg)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: Proxy-Uri path: %w", ErrInvalidMessage, err)
			}
			inner = append(inner, message.Option{ID: optURIPath, Value: []byte(v)})
		}
	}
	if u.RawQuery != "" || u.ForceQuery {
		for _, arg := range strings.Split(u.RawQuery, "&") {
			v, err := url.PathUnescape(arg)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: Proxy-Uri query: %w", ErrInvalidMessage, err)
			}
			inner = append(inner, message.Option{ID: optURIQuery, Value: []byte(v)})
		}
	}
	outer = append(outer, message.Option{ID: optProxyURI, Value: []byte(u.Scheme + "://" + u.Host)})
	slices.SortStableFunc(inner, cmpOption)
	slices.SortStableFunc(outer, cmpOption)
	return inner, outer, nil
}

// findOSCORE returns the OSCORE option value and whether it is present. A
// repeated OSCORE option is malformed: the option is not repeatable (§2).
func findOSCORE(opts message.Options) ([]byte, bool, error) {
	var val []byte
	found := false
	for _, o := range opts {
		if o.ID != OptionNumber {
			continue
		}
		if found {
			return nil, true, fmt.Errorf("%w: OSCORE option repeated", ErrMalformed)
		}
		val, found = o.Value, true
	}
	return val, found, nil
}

// merge builds the options of a verified message: the Outer Class U options
// of the received message without the OSCORE option (§8.2 step 7), and the
// decrypted Inner options, sorted.
func merge(outer, inner message.Options) message.Options {
	out := make(message.Options, 0, len(outer)+len(inner))
	for _, o := range outer {
		if classUOnly(o.ID) && o.ID != OptionNumber {
			out = append(out, o)
		}
	}
	out = append(out, inner...)
	slices.SortStableFunc(out, cmpOption)
	return out
}

func hasOption(opts message.Options, id message.OptionID) bool {
	for _, o := range opts {
		if o.ID == id {
			return true
		}
	}
	return false
}

func optionValue(opts message.Options, id message.OptionID) ([]byte, bool) {
	for _, o := range opts {
		if o.ID == id {
			return o.Value, true
		}
	}
	return nil, false
}

// uintValue decodes a CoAP uint option value (RFC 7252 §3.2).
func uintValue(b []byte) (uint32, bool) {
	if len(b) > 4 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v, true
}

// appendUint encodes a CoAP uint option value: minimal big-endian, 0 as
// the empty string (RFC 7252 §3.2).
func appendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return b
	case v <= 0xff:
		return append(b, byte(v))
	case v <= 0xffff:
		return append(b, byte(v>>8), byte(v))
	case v <= 0xffffff:
		return append(b, byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
