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
	if g.take() {
		g.log.LogAttrs(ctx, level, string(line), slog.String("stream", stream))
	}
}

// failure logs one record for a call the host failed (trap, timeout, ABI misuse), with what the
// guest wrote to stderr during the call folded into it, under the same rate limit as guest lines.
func (g *guestLog) failure(role Role, result, reason string, output []byte) {
	ctx := context.Background()
	if !g.log.Enabled(ctx, slog.LevelWarn) || !g.take() {
		return
	}
	attrs := []slog.Attr{slog.String("role", role.String()), slog.String("result", result), slog.String("reason", reason)}
	if len(output) > 0 {
		attrs = append(attrs, slog.String("stderr", string(bytes.TrimRight(output, "\n"))))
	}
	g.log.LogAttrs(ctx, slog.LevelWarn, "guest call failed", attrs...)
}

// take spends one token of the bucket, reporting lines suppressed before it.
func (g *guestLog) take() bool {
	g.mu.Lock()
	now := g.now()
	g.tokens = min(logBurst, g.tokens+now.Sub(g.last).Seconds()*logRate)
	g.last = now
	if g.tokens < 1 {
		g.suppressed++
		g.mu.Unlock()
		return false
	}
	g.tokens--
	suppressed := g.suppressed
	g.suppressed = 0
	g.mu.Unlock()
	if suppressed > 0 {
		g.log.LogAttrs(context.Background(), slog.LevelWarn, "guest output suppressed by rate limit", slog.Int("lines", suppressed))
	}
	return true
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
// only by the goroutine running the instance. A writer that holds (stderr) keeps a call's lines
// until the call ends: a failed call logs them folded into one record with the failure (a Go
// panic is dozens of lines of stack), a successful one line by line.
type lineWriter struct {
	out    *guestLog
	stream string
	level  slog.Level
	buf    []byte
	hold   bool
	held   []byte // complete lines, each ending in a newline, up to maxHeld bytes
}

// maxHeld bounds the output kept for one call.
const maxHeld = 16 << 10

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
		if !w.hold {
			w.out.write(w.level, w.stream, w.buf)
		} else if len(w.held)+len(w.buf) < maxHeld {
			w.held = append(append(w.held, w.buf...), '\n')
		}
	}
	w.buf = w.buf[:0]
}

// output is what the writer holds, the line in progress included.
func (w *lineWriter) output() []byte {
	w.flush()
	return w.held
}

// release forgets the held lines, logging them one by one first when log is set, and returns
// them (valid until the next write).
func (w *lineWriter) release(log bool) []byte {
	held := w.held
	w.held = w.held[:0]
	for log && len(held) > 0 {
		line, rest, _ := bytes.Cut(held, []byte("\n"))
		w.out.write(w.level, w.stream, line)
		held = rest
	}
	return held
}
