package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressView shows a job's progress: on a terminal one bar redrawn in place, otherwise (a
// log file, a pipe) a plain line every plainEvery.
type progressView struct {
	w     io.Writer
	tty   bool
	label string
	now   func() time.Time
	start time.Time
	shown time.Time // last plain line or redraw
	drawn bool
}

const (
	plainEvery = 2 * time.Second
	redrawMin  = 100 * time.Millisecond // a terminal redraw at most this often
	barWidth   = 30
)

func newProgress(w io.Writer, label string) *progressView {
	return &progressView{w: w, tty: isTerminal(w), label: label, now: time.Now, start: time.Now()}
}

// isTerminal reports whether w is a character device other than /dev/null.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// update shows done of total, rate limited; cheap enough to call per event.
func (p *progressView) update(done, total uint64) {
	now := p.now()
	every := plainEvery
	if p.tty {
		every = redrawMin
	}
	if now.Sub(p.shown) < every {
		return
	}
	p.shown = now
	p.show(done, total, now)
}

// finish shows the final count and ends the bar's line.
func (p *progressView) finish(done, total uint64) {
	now := p.now()
	if p.tty {
		p.show(done, total, now)
		fmt.Fprintln(p.w)
		return
	}
	if p.drawn { // short jobs print no progress at all
		p.show(done, total, now)
	}
}

func (p *progressView) show(done, total uint64, now time.Time) {
	p.drawn = true
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	eta := "?"
	if total > done && rate > 0 {
		eta = (time.Duration(float64(total-done)/rate*float64(time.Second)) + time.Second/2).Truncate(time.Second).String()
	} else if total <= done {
		eta = "0s"
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d/%d (%s), %.0f/s, ETA %s\n", p.label, done, total, percent(done, total), rate, eta)
		return
	}
	fill := barWidth
	if total > 0 && done < total {
		fill = int(float64(done) / float64(total) * barWidth)
	}
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", barWidth-fill)
	// \r returns to the line's start; \x1b[K clears what a longer previous line left.
	fmt.Fprintf(p.w, "\r%s [%s] %d/%d %s %.0f/s ETA %s\x1b[K", p.label, bar, done, total, percent(done, total), rate, eta)
}

func percent(done, total uint64) string {
	if total == 0 {
		return "100%"
	}
	return fmt.Sprintf("%d%%", min(done*100/total, 100))
}
