// Package pionlog routes pion's leveled logging into a zerolog.Logger.
//
// pion logs per packet and per handshake step, which a peer can trigger at
// will, so everything except trace goes to zerolog's debug level; trace
// stays trace.
package pionlog

import (
	"fmt"

	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// Factory is a logging.LoggerFactory over a zerolog.Logger.
type Factory struct {
	Log zerolog.Logger
}

var _ logging.LoggerFactory = Factory{}

// NewLogger returns a logger for scope.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return logger{log: f.Log.With().Str("pion", scope).Logger()}
}

type logger struct {
	log zerolog.Logger
}

func (l logger) Trace(msg string) { l.log.Trace().Msg(msg) }
func (l logger) Tracef(format string, args ...any) {
	if e := l.log.Trace(); e.Enabled() {
		e.Msg(fmt.Sprintf(format, args...))
	}
}
func (l logger) Debug(msg string)                  { l.log.Debug().Msg(msg) }
func (l logger) Debugf(format string, args ...any) { l.debugf(format, args...) }
func (l logger) Info(msg string)                   { l.log.Debug().Msg(msg) }
func (l logger) Infof(format string, args ...any)  { l.debugf(format, args...) }
func (l logger) Warn(msg string)                   { l.log.Debug().Msg(msg) }
func (l logger) Warnf(format string, args ...any)  { l.debugf(format, args...) }
func (l logger) Error(msg string)                  { l.log.Debug().Msg(msg) }
func (l logger) Errorf(format string, args ...any) { l.debugf(format, args...) }

// debugf formats only when debug is enabled.
func (l logger) debugf(format string, args ...any) {
	if e := l.log.Debug(); e.Enabled() {
		e.Msg(fmt.Sprintf(format, args...))
	}
}
