package mote

import "testing"

func TestJoinPort(t *testing.T) {
	for _, tc := range []struct {
		links string
		port  int
		ok    bool
	}{
		{"<>;brski-jp=5684", 5684, true},
		{`<>;brski-jp="63245"`, 63245, true},
		{"<>;brski-jp=61616, <>;brski-jp=61617;var=\"c509 v2\"", 61616, true},
		{"</.well-known/brski>;rt=brski,<>;brski-jp=8485", 8485, true},
		{"<coaps://[fe80::1]:8485>;rt=brski.jp", 0, false},
		{"<>;brski-jp=0", 0, false},
		{"<>;brski-jp=70000", 0, false},
		{"", 0, false},
	} {
		p, ok := joinPort(tc.links)
		if p != tc.port || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.links, p, ok, tc.port, tc.ok)
		}
	}
}
