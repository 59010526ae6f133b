package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/logquery"
)

const tailHelp = `Prints the last N events as JSON lines, oldest first; with -f, goes on printing events as
they are logged, until interrupted.

While the router runs, -f follows its admin API's event stream (GET /api/v1/events/stream),
which shows each event as it is logged. While it is stopped, -f opens the file read-only every
--interval, reads what is new, and closes it again, so that a router can start meanwhile (from
then on, -f goes on following the file only until the router holds it, and then says so).` + logLockNote

func cmdLogTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] [-n N] [-f] [--source S] [--key PATTERN] [--header NAME[:VALUE]]... [--interval D]"
	fs := newFlags("log tail", synopsis, stdout, stderr)
	describe(fs, "log tail", synopsis, tailHelp)
	path := configFlag(fs)
	n := fs.Int("n", 10, "print the last `N` events")
	follow := fs.Bool("f", false, "follow: print new events as they are logged")
	source := fs.String("source", "", "only events of this `SOURCE`")
	key := fs.String("key", "", "only events whose routing key matches this AMQP topic `PATTERN`")
	var headers listFlag
	fs.Var(&headers, "header", "only events with this header (`NAME` or NAME:VALUE; repeatable)")
	interval := fs.Duration("interval", time.Second, "with -f on a stopped router's log: look for new events this often (`D`)")
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	q, code := buildQuery(fs, stderr, nil, *source, *key, headers)
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
	write := func(rec logquery.Record) error { return out.write(rec) }
	err := tailThroughRouter(ctx, cfg, q, *n, *follow, write)
	if isNoRouter(err) {
		err = tailOffline(ctx, cfg, q, *n, *follow, *interval, write)
	}
	return exitCode(stderr, "log tail", err)
}

// tailThroughRouter prints the last n events from the running router's admin API and, with
// follow, the ones it logs from then on; errNoRouter when no router answers.
func tailThroughRouter(ctx context.Context, cfg *config.Config, q *logquery.Query, n int, follow bool, write func(logquery.Record) error) error {
	c, err := newAdminClient(cfg.Router.AdminAddr, cfg.Router.AdminToken)
	if err != nil {
		return err
	}
	last, err := c.lastEvents(ctx, q, n)
	if err != nil {
		return err
	}
	for _, rec := range last.records {
		if err := write(rec); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	return c.followEvents(ctx, q, last.lastSeq+1, write)
}

// tailOffline prints the last n events of a stopped router's log and, with follow, the ones
// appended from then on.
func tailOffline(ctx context.Context, cfg *config.Config, q *logquery.Query, n int, follow bool, every time.Duration, write func(logquery.Record) error) error {
	emit := func(ev *event.Event) error { return write(logquery.NewRecord(ev)) }
	var next uint64
	err := readLog(cfg, func(st app.EventLog) error {
		evs, err := logquery.Last(st, q, n)
		for _, ev := range evs {
			if err := emit(ev); err != nil {
				return err
			}
		}
		next = st.LastSeq() + 1
		return err
	})
	if err == nil && follow {
		err = followLog(ctx, cfg, q, next, every, emit)
	}
	return err
}

// readLog opens the log read-only for the duration of fn.
func readLog(cfg *config.Config, fn func(app.EventLog) error) error {
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

// followLog prints the events appended from seq next on, until ctx ends. The file is opened
// only while there is something new to read, so that a router can still start meanwhile.
func followLog(ctx context.Context, cfg *config.Config, q *logquery.Query, next uint64, every time.Duration, emit func(*event.Event) error) error {
	if cfg.Store.Backend == config.BackendStream {
		return followStream(ctx, cfg, q, next, emit)
	}
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
		err = readLog(cfg, func(st app.EventLog) error {
			from := next
			next = max(next, st.LastSeq()+1)
			sel := *q
			sel.From, sel.To, sel.Limit = from, next-1, 0
			_, err := logquery.List(ctx, st, &sel, 0, emit)
			return err
		})
		if err != nil {
			return fmt.Errorf("following the log: %w", err)
		}
	}
}

// followStream prints the events appended to a stream log from seq next on, until ctx ends,
// whichever router appends them: the stream is followed, not polled.
func followStream(ctx context.Context, cfg *config.Config, q *logquery.Query, next uint64, emit func(*event.Event) error) error {
	return readLog(cfg, func(st app.EventLog) error {
		for {
			notify := st.Notify()
			if last := st.LastSeq(); next <= last {
				sel := *q
				sel.From, sel.To, sel.Limit = next, last, 0
				if _, err := logquery.List(ctx, st, &sel, 0, emit); err != nil {
					return fmt.Errorf("following the log: %w", err)
				}
				next = last + 1
			}
			select {
			case <-ctx.Done():
				return nil
			case <-notify:
			}
		}
	})
}
