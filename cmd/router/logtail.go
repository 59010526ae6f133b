package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/store"
)

const tailHelp = `Prints the last N events as JSON lines, oldest first; with -f, goes on printing events as
they are appended, until interrupted.

-f follows a log that another process writes while this one does not hold it: it opens the
file read-only every --interval, reads what is new, and closes it again. A running router holds
the file for as long as it runs, so -f against it stops with an error saying the log is locked;
use it while the router is stopped, or with offline tools that append.` + logLockNote

func cmdLogTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] [-n N] [-f] [--source S] [--key PATTERN] [--interval D]"
	fs := newFlags("log tail", synopsis, stdout, stderr)
	describe(fs, "log tail", synopsis, tailHelp)
	path := configFlag(fs)
	n := fs.Int("n", 10, "print the last `N` events")
	follow := fs.Bool("f", false, "follow: print new events as they are appended")
	source := fs.String("source", "", "only events of this `SOURCE`")
	key := fs.String("key", "", "only events whose routing key matches this AMQP topic `PATTERN`")
	interval := fs.Duration("interval", time.Second, "with -f: look for new events this often (`D`)")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	f, code := buildFilter(fs, stderr, nil, *source, *key)
	if code >= 0 {
		return code
	}
	switch {
	case *n < 0:
		return usageError(fs, stderr, "-n must not be negative")
	case *interval <= 0:
		return usageError(fs, stderr, "--interval must be positive")
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	out := newJSONLines(stdout)
	emit := func(ev *event.Event) error { return out.write(newLogRecord(ev)) }
	var next uint64
	err := readLog(cfg, func(st *store.Store) error {
		evs, err := lastEvents(st, f, *n)
		for _, ev := range evs {
			if err := emit(ev); err != nil {
				return err
			}
		}
		next = st.LastSeq() + 1
		return err
	})
	if err == nil && *follow {
		err = followLog(ctx, cfg, f, next, *interval, emit)
	}
	if err != nil {
		fmt.Fprintf(stderr, "router log tail: %v\n", err)
		return exitFail
	}
	return exitOK
}

// readLog opens the log read-only for the duration of fn.
func readLog(cfg *config.Config, fn func(*store.Store) error) error {
	st, err := openReadOnly(cfg)
	if err != nil {
		return err
	}
	err = fn(st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

// lastEvents returns the last n events f selects, oldest first, reading backwards in chunks.
func lastEvents(st *store.Store, f *eventFilter, n int) ([]*event.Event, error) {
	first, hi := st.FirstSeq(), st.LastSeq()
	var out []*event.Event
	for first > 0 && hi >= first && len(out) < n {
		lo := first
		if hi-first >= scanStep {
			lo = hi - scanStep + 1
		}
		var chunk []*event.Event
		_, err := st.Scan(lo, int(hi-lo+1), f.keep, func(ev *event.Event) bool {
			chunk = append(chunk, ev)
			return true
		})
		if err != nil {
			return nil, err
		}
		out = append(chunk, out...)
		hi = lo - 1
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return slices.Clip(out), nil
}

// followLog prints the events appended from seq next on, until ctx ends. The file is opened
// only while there is something new to read, so that a router can still start meanwhile.
func followLog(ctx context.Context, cfg *config.Config, f *eventFilter, next uint64, every time.Duration, emit func(*event.Event) error) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var seen os.FileInfo
	lastRead := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		fi, err := os.Stat(cfg.Store.Path)
		if err != nil {
			return explainOpen(cfg, err)
		}
		// Every commit rewrites pages, and so the modification time; read again now and then
		// anyway, in case a file system keeps coarse times.
		if seen != nil && fi.ModTime().Equal(seen.ModTime()) && fi.Size() == seen.Size() && time.Since(lastRead) < 5*every {
			continue
		}
		seen, lastRead = fi, time.Now()
		err = readLog(cfg, func(st *store.Store) error {
			from := next
			next = max(next, st.LastSeq()+1)
			sel := *f
			sel.from, sel.to = from, next-1
			return listEvents(ctx, st, &sel, 0, emit)
		})
		if err != nil {
			return err
		}
	}
}
