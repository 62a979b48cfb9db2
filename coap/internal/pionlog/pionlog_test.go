package pionlog

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"
)

func TestLevels(t *testing.T) {
	tests := []struct {
		name  string
		min   zerolog.Level
		log   func(l interface{ Warnf(string, ...any) })
		level string // "" means nothing logged
	}{
		{"warning is debug", zerolog.DebugLevel, func(l interface{ Warnf(string, ...any) }) { l.Warnf("x %d", 1) }, "debug"},
		{"suppressed above debug", zerolog.InfoLevel, func(l interface{ Warnf(string, ...any) }) { l.Warnf("x %d", 1) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := Factory{Log: zerolog.New(&buf).Level(tc.min)}
			tc.log(f.NewLogger("dtls"))
			if tc.level == "" {
				if buf.Len() != 0 {
					t.Fatalf("logged %q", buf.String())
				}
				return
			}
			var line struct {
				Level, Pion, Message string
			}
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			if line.Level != tc.level || line.Pion != "dtls" || line.Message != "x 1" {
				t.Fatalf("line %+v", line)
			}
		})
	}
}

func TestAllMethods(t *testing.T) {
	var buf bytes.Buffer
	l := Factory{Log: zerolog.New(&buf).Level(zerolog.TraceLevel)}.NewLogger("s")
	l.Trace("a")
	l.Tracef("%s", "b")
	l.Debug("c")
	l.Debugf("%s", "d")
	l.Info("e")
	l.Infof("%s", "f")
	l.Warn("g")
	l.Warnf("%s", "h")
	l.Error("i")
	l.Errorf("%s", "j")
	levels := map[string]int{}
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var line struct{ Level string }
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		levels[line.Level]++
	}
	if levels["trace"] != 2 || levels["debug"] != 8 || len(levels) != 2 {
		t.Fatalf("levels %v, want 2 trace and 8 debug", levels)
	}
}
