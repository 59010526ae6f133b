package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestProgress(tty bool) (*progressView, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgress(&buf, "replaying")
	p.tty, p.now, p.start = tty, clock.now, clock.t
	return p, &buf, clock
}

func TestProgressPlainLines(t *testing.T) {
	p, buf, clock := newTestProgress(false)
	clock.t = clock.t.Add(time.Second)
	p.update(10, 100) // the first update shows
	clock.t = clock.t.Add(time.Second)
	p.update(20, 100) // within 2s of the last line: nothing
	clock.t = clock.t.Add(time.Second)
	p.update(30, 100)
	clock.t = clock.t.Add(time.Second)
	p.finish(100, 100)
	want := "replaying: 10/100 (10%), 10/s, ETA 9s\n" +
		"replaying: 30/100 (30%), 10/s, ETA 7s\n" +
		"replaying: 100/100 (100%), 25/s, ETA 0s\n"
	if buf.String() != want {
		t.Errorf("got\n%swant\n%s", buf.String(), want)
	}
}

func TestProgressPlainShortJobIsQuiet(t *testing.T) {
	p, buf, _ := newTestProgress(false)
	p.finish(3, 3)
	if buf.Len() != 0 {
		t.Errorf("a job that ended before the first line printed %q", buf.String())
	}
}

func TestProgressBarRedrawsInPlace(t *testing.T) {
	p, buf, clock := newTestProgress(true)
	clock.t = clock.t.Add(2 * time.Second)
	p.update(50, 200)
	clock.t = clock.t.Add(50 * time.Millisecond)
	p.update(60, 200) // sooner than a redraw: nothing
	clock.t = clock.t.Add(2 * time.Second)
	p.finish(200, 200)
	out := buf.String()
	if strings.Count(out, "\r") != 2 || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("want two redraws of one line, got %q", out)
	}
	first := strings.Split(out, "\r")[1]
	if !strings.HasPrefix(first, "replaying [=======       ") || !strings.Contains(first, "] 50/200 25% 25/s ETA 6s\x1b[K") {
		t.Errorf("bar %q", first)
	}
	if last := strings.Split(out, "\r")[2]; !strings.Contains(last, "[==============================] 200/200 100%") {
		t.Errorf("final bar %q", last)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Error("/dev/null is a character device but not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}
