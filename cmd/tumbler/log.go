package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// newLogger writes console logs to w (colour on a terminal) or JSON lines.
func newLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	if format == "json" {
		return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
	}
	noColor := true
	if f, ok := w.(*os.File); ok {
		noColor = !term.IsTerminal(int(f.Fd()))
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: noColor}).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
