package iceserver

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends pion/turn's logs to slog at debug level: pion logs hostile
// or mundane traffic (bad credentials, stray packets) as errors, and what an
// operator needs is counted in the metrics instead.
type pionLogs struct{ l *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.l.With("pion", scope)}
}

type pionLogger struct{ l *slog.Logger }

func (p pionLogger) log(msg string) {
	p.l.Log(context.Background(), slog.LevelDebug, msg)
}

func (p pionLogger) logf(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.log(fmt.Sprintf(format, args...))
	}
}

func (p pionLogger) Trace(string)              {}
func (p pionLogger) Tracef(string, ...any)     {}
func (p pionLogger) Debug(m string)            { p.log(m) }
func (p pionLogger) Debugf(f string, a ...any) { p.logf(f, a...) }
func (p pionLogger) Info(m string)             { p.log(m) }
func (p pionLogger) Infof(f string, a ...any)  { p.logf(f, a...) }
func (p pionLogger) Warn(m string)             { p.log(m) }
func (p pionLogger) Warnf(f string, a ...any)  { p.logf(f, a...) }
func (p pionLogger) Error(m string)            { p.log(m) }
func (p pionLogger) Errorf(f string, a ...any) { p.logf(f, a...) }
