package wasmhost

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// Guest output rate: a token bucket per module, so that a chatty or hostile guest cannot flood
// the router log. Lines over the rate are counted and the count is reported with the next line
// that gets through.
const (
	logRate  = 10 // lines per second
	logBurst = 50
)

// guestLog writes guest lines to the router log for one module.
type guestLog struct {
	log *slog.Logger // carries the module name
	now func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

func newGuestLog(l *slog.Logger) *guestLog {
	return &guestLog{log: l, now: time.Now, tokens: logBurst, last: time.Now()}
}

// write logs one line from stream ("log", "stdout" or "stderr") unless the bucket is empty.
func (g *guestLog) write(level slog.Level, stream string, line []byte) {
	ctx := context.Background()
	if !g.log.Enabled(ctx, level) {
		return
	}
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	g.mu.Lock()
	now := g.now()
	g.tokens = min(logBurst, g.tokens+now.Sub(g.last).Seconds()*logRate)
	g.last = now
	if g.tokens < 1 {
		g.suppressed++
		g.mu.Unlock()
		return
	}
	g.tokens--
	suppressed := g.suppressed
	g.suppressed = 0
	g.mu.Unlock()

	if suppressed > 0 {
		g.log.LogAttrs(ctx, slog.LevelWarn, "guest output suppressed by rate limit", slog.Int("lines", suppressed))
	}
	g.log.LogAttrs(ctx, level, string(line), slog.String("stream", stream))
}

// levelOf maps the ABI's log levels (0 debug .. 3 error) to slog levels.
func levelOf(level int32) slog.Level {
	switch {
	case level <= 0:
		return slog.LevelDebug
	case level == 1:
		return slog.LevelInfo
	case level == 2:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// lineWriter turns a guest's stdout or stderr into log lines. Each instance has its own, written
// only by the goroutine running the instance.
type lineWriter struct {
	out    *guestLog
	stream string
	level  slog.Level
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			// An over-long line is cut: log what fits, and the rest starts a new line.
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.flush()
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.flush()
	}
	return n, nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.out.write(w.level, w.stream, w.buf)
	}
	w.buf = w.buf[:0]
}
