package pluginhost

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/sirupsen/logrus"
)

// hclogLogrus is an hclog.Logger writing into a logrus entry. go-plugin logs
// through it, and so do the plugin's own hclog lines, which go-plugin reads
// from the plugin's stderr and re-logs with their level and fields.
type hclogLogrus struct {
	entry   *logrus.Entry
	name    string // "" for go-plugin's own lines; the plugin's are named after its binary
	implied []any
	// quiet: every line is debug (validate prints diagnostics only).
	quiet bool
	// stopping: set while the host stops the process on purpose; go-plugin's
	// own lines are then debug.
	stopping *atomic.Bool
}

var _ hclog.Logger = (*hclogLogrus)(nil)

func newHCLogger(e *logrus.Entry, quiet bool, stopping *atomic.Bool) hclog.Logger {
	return &hclogLogrus{entry: e, quiet: quiet, stopping: stopping}
}

func (l *hclogLogrus) Log(level hclog.Level, msg string, args ...any) {
	lv, ok := toLogrus(level)
	if ok && lv < logrus.DebugLevel && (l.quiet || l.name == "" && l.stopping != nil && l.stopping.Load()) {
		lv = logrus.DebugLevel
	}
	if !ok || !l.entry.Logger.IsLevelEnabled(lv) {
		return
	}
	fields := logrus.Fields{}
	if l.name != "" {
		fields["logger"] = l.name
	}
	addPairs(fields, l.implied)
	addPairs(fields, args)
	l.entry.WithFields(fields).Log(lv, msg)
}

func addPairs(f logrus.Fields, args []any) {
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			f["EXTRA_VALUE_AT_END"] = args[i]
			break
		}
		k := fmt.Sprint(args[i])
		switch k {
		case "msg", "level", "time", "plugin":
			k = "plugin_" + k // never clobber logrus' own keys or ours
		}
		f[k] = args[i+1]
	}
}

func toLogrus(l hclog.Level) (logrus.Level, bool) {
	switch l {
	case hclog.Trace:
		return logrus.TraceLevel, true
	case hclog.Debug:
		return logrus.DebugLevel, true
	case hclog.Info, hclog.NoLevel:
		return logrus.InfoLevel, true
	case hclog.Warn:
		return logrus.WarnLevel, true
	case hclog.Error:
		return logrus.ErrorLevel, true
	}
	return 0, false
}

func (l *hclogLogrus) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *hclogLogrus) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *hclogLogrus) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *hclogLogrus) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *hclogLogrus) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *hclogLogrus) IsTrace() bool { return l.entry.Logger.IsLevelEnabled(logrus.TraceLevel) }
func (l *hclogLogrus) IsDebug() bool { return l.entry.Logger.IsLevelEnabled(logrus.DebugLevel) }
func (l *hclogLogrus) IsInfo() bool  { return l.entry.Logger.IsLevelEnabled(logrus.InfoLevel) }
func (l *hclogLogrus) IsWarn() bool  { return l.entry.Logger.IsLevelEnabled(logrus.WarnLevel) }
func (l *hclogLogrus) IsError() bool { return l.entry.Logger.IsLevelEnabled(logrus.ErrorLevel) }

func (l *hclogLogrus) ImpliedArgs() []any { return l.implied }

func (l *hclogLogrus) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(append([]any(nil), l.implied...), args...)
	return &c
}

func (l *hclogLogrus) Name() string { return l.name }

func (l *hclogLogrus) Named(name string) hclog.Logger {
	c := *l
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (l *hclogLogrus) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

// SetLevel is a no-op: the level belongs to the core's logrus logger.
func (l *hclogLogrus) SetLevel(hclog.Level) {}

func (l *hclogLogrus) GetLevel() hclog.Level {
	switch lv := l.entry.Logger.GetLevel(); {
	case lv >= logrus.TraceLevel:
		return hclog.Trace
	case lv >= logrus.DebugLevel:
		return hclog.Debug
	case lv >= logrus.InfoLevel:
		return hclog.Info
	case lv >= logrus.WarnLevel:
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (l *hclogLogrus) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(nil), "", 0)
}

func (l *hclogLogrus) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	if l.quiet {
		return newLineWriter(l.entry, logrus.DebugLevel, "")
	}
	return newLineWriter(l.entry, logrus.InfoLevel, "")
}

// lineWriter logs each line written to it; go-plugin copies the plugin's
// os.Stdout/os.Stderr (SyncStdout/SyncStderr) into two of them.
type lineWriter struct {
	entry  *logrus.Entry
	level  logrus.Level
	stream string

	mu  sync.Mutex
	buf []byte
}

const maxLine = 64 << 10

func newLineWriter(e *logrus.Entry, level logrus.Level, stream string) *lineWriter {
	if stream != "" {
		e = e.WithField("stream", stream)
	}
	return &lineWriter{entry: e, level: level, stream: stream}
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.buf = append(w.buf, b...)
			if len(w.buf) >= maxLine {
				w.emit()
			}
			break
		}
		w.buf = append(w.buf, b[:i]...)
		w.emit()
		b = b[i+1:]
	}
	return n, nil
}

func (w *lineWriter) emit() {
	line := bytes.TrimRight(w.buf, "\r")
	if len(line) > 0 {
		w.entry.Log(w.level, string(line))
	}
	w.buf = w.buf[:0]
}

// tailWriter keeps the last lines a plugin wrote to its stderr, so that a
// plugin that dies at start-up explains itself in the launch error.
type tailWriter struct {
	mu    sync.Mutex
	lines []string
	part  []byte
}

const tailLines, tailLineMax = 5, 512

func (w *tailWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.part = append(w.part, b...)
			break
		}
		w.part = append(w.part, b[:i]...)
		if line := strings.TrimSpace(string(w.part)); line != "" {
			if len(line) > tailLineMax {
				line = line[:tailLineMax] + "…"
			}
			w.lines = append(w.lines, line)
			if len(w.lines) > tailLines {
				w.lines = w.lines[1:]
			}
		}
		w.part = w.part[:0]
		b = b[i+1:]
	}
	if len(w.part) > tailLineMax {
		w.part = w.part[:tailLineMax]
	}
	return n, nil
}

// String is "" or "; plugin stderr: line | line".
func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := w.lines
	if p := strings.TrimSpace(string(w.part)); p != "" {
		lines = append(append([]string(nil), lines...), p)
	}
	if len(lines) == 0 {
		return ""
	}
	return "; plugin stderr: " + strings.Join(lines, " | ")
}
