package actors

import (
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// raftLogger hands hashicorp/raft's logs (hclog) to the node's slog
// logger, so they come out in the node's format (text or JSON) with a
// "component" attribute. Raft's info lines (every election step, every
// snapshot) pass only when the node logs at debug; warnings and errors
// always pass.
func raftLogger(log *slog.Logger, name string) hclog.Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &slogHCLog{Logger: hclog.NewNullLogger(), log: log.With("component", name), name: name}
}

// slogHCLog implements hclog.Logger on slog. The embedded null logger
// answers what raft does not use (StandardLogger, SetLevel).
type slogHCLog struct {
	hclog.Logger
	log     *slog.Logger
	name    string
	implied []any
}

func (l *slogHCLog) level(lv hclog.Level) (slog.Level, bool) {
	var s slog.Level
	switch {
	case lv >= hclog.Error:
		s = slog.LevelError
	case lv == hclog.Warn:
		s = slog.LevelWarn
	case lv == hclog.Info:
		s = slog.LevelInfo
	default:
		s = slog.LevelDebug
	}
	if lv < hclog.Warn && !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return s, false
	}
	return s, l.log.Enabled(context.Background(), s)
}

func (l *slogHCLog) Log(lv hclog.Level, msg string, args ...any) {
	if s, ok := l.level(lv); ok {
		l.log.Log(context.Background(), s, msg, append(l.implied[:len(l.implied):len(l.implied)], args...)...)
	}
}

func (l *slogHCLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *slogHCLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *slogHCLog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *slogHCLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *slogHCLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *slogHCLog) IsTrace() bool { _, ok := l.level(hclog.Trace); return ok }
func (l *slogHCLog) IsDebug() bool { _, ok := l.level(hclog.Debug); return ok }
func (l *slogHCLog) IsInfo() bool  { _, ok := l.level(hclog.Info); return ok }
func (l *slogHCLog) IsWarn() bool  { _, ok := l.level(hclog.Warn); return ok }
func (l *slogHCLog) IsError() bool { _, ok := l.level(hclog.Error); return ok }

func (l *slogHCLog) ImpliedArgs() []any { return l.implied }
func (l *slogHCLog) Name() string       { return l.name }

func (l *slogHCLog) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(l.implied[:len(l.implied):len(l.implied)], args...)
	return &c
}

func (l *slogHCLog) Named(name string) hclog.Logger {
	c := *l
	if l.name != "" {
		name = l.name + "." + name
	}
	c.name, c.log = name, l.log.With("subsystem", name)
	return &c
}

func (l *slogHCLog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name, c.log = name, l.log.With("subsystem", name)
	return &c
}
