package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/filters"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/store"
)

const logLockNote = `
The event log is a file that one process at a time may open: while the router runs, these
commands cannot read it and say so; the router's admin API (GET /api/v1/status) then gives
the log's range and the delivery positions and lag.`

func cmdLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "log", []command{
		{"list", "print logged events as JSON lines, with filters", cmdLogList},
		{"show", "print the events with the given seqs as JSON lines", cmdLogShow},
		{"tail", "print the last events, and with -f follow new ones", cmdLogTail},
		{"stats", "print the log's size, range, sources, positions and lag as JSON", cmdLogStats},
	}, args, stdout, stderr)
}

// dispatch runs a command group's subcommand (`router log list`).
func dispatch(ctx context.Context, group string, subs []command, args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: router %s SUBCOMMAND [flags]\n\nSubcommands:\n", group)
		for _, c := range subs {
			fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(w, "\nRun 'router %s SUBCOMMAND --help' for its flags.\n", group)
	}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "router %s: unknown subcommand %q\n\n", group, args[0])
	usage(stderr)
	return exitUsage
}

// eventFilter selects logged events.
type eventFilter struct {
	since, until time.Time
	from, to     uint64
	source       string
	key          string // AMQP topic pattern
}

func (f *eventFilter) keep(source, key string) bool {
	return (f.source == "" || source == f.source) && (f.key == "" || filters.Match(f.key, key))
}

func (f *eventFilter) inTime(ev *event.Event) bool {
	return (f.since.IsZero() || !ev.IngestTime.Before(f.since)) && (f.until.IsZero() || !ev.IngestTime.After(f.until))
}

// ingestSkew bounds how far ingest times may run out of seq order: each source stamps its
// events when it receives them, a moment before the append that numbers them.
const ingestSkew = time.Minute

// scanStep is how many records one Scan call looks at.
const scanStep = 4096

// listEvents calls emit for the events f selects, in seq order, at most limit (0: all).
func listEvents(ctx context.Context, st *store.Store, f *eventFilter, limit int, emit func(*event.Event) error) error {
	next := max(f.from, st.FirstSeq())
	if !f.since.IsZero() {
		next = max(next, seqAtTime(st, f.since.Add(-ingestSkew)))
	}
	last := st.LastSeq()
	if f.to > 0 {
		last = min(last, f.to)
	}
	emitted, stop := 0, false
	var emitErr error
	for next > 0 && next <= last && !stop {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := st.Scan(next, scanStep, f.keep, func(ev *event.Event) bool {
			if ev.Seq > last || (!f.until.IsZero() && ev.IngestTime.After(f.until.Add(ingestSkew))) {
				stop = true
				return false
			}
			if !f.inTime(ev) {
				return true
			}
			if emitErr = emit(ev); emitErr != nil {
				stop = true
				return false
			}
			emitted++
			stop = limit > 0 && emitted >= limit
			return !stop
		})
		if err != nil {
			return err
		}
		if n <= next {
			break
		}
		next = n
	}
	return emitErr
}

// seqAtTime finds, by binary search over ingest times, the first seq ingested at or after t.
func seqAtTime(st *store.Store, t time.Time) uint64 {
	lo, hi := st.FirstSeq(), st.LastSeq()
	if lo == 0 {
		return 0
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		ev, err := st.Get(mid)
		if err != nil {
			return st.FirstSeq() // a gap should not happen; fall back to a full scan
		}
		if ev.IngestTime.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func cmdLogList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] [--since D|T] [--until D|T] [--from-seq N] [--to-seq N] [--source S] [--key PATTERN] [--limit N]"
	fs := newFlags("log list", synopsis, stdout, stderr)
	describe(fs, "log list", synopsis, "Prints logged events as JSON lines, oldest first.\n"+logLockNote)
	path := configFlag(fs)
	when := addWhenFlags(fs, "events ingested")
	from := fs.Uint64("from-seq", 0, "first seq `N`")
	to := fs.Uint64("to-seq", 0, "last seq `N`")
	source := fs.String("source", "", "only events of this `SOURCE`")
	key := fs.String("key", "", "only events whose routing key matches this AMQP topic `PATTERN` (order.*, payment.#)")
	limit := fs.Int("limit", 100, "print at most `N` events (0: no limit)")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	f, code := buildFilter(fs, stderr, &when, *source, *key)
	if code >= 0 {
		return code
	}
	f.from, f.to = *from, *to
	switch {
	case *limit < 0:
		return usageError(fs, stderr, "--limit must not be negative")
	case *to > 0 && *from > *to:
		return usageError(fs, stderr, "--from-seq %d is after --to-seq %d", *from, *to)
	}
	return withLog(*path, stderr, "log list", func(_ *config.Config, st *store.Store) error {
		out := newJSONLines(stdout)
		return listEvents(ctx, st, f, *limit, func(ev *event.Event) error { return out.write(newLogRecord(ev)) })
	})
}

// buildFilter checks the filter flags shared by list and tail (when is nil for tail); a bad
// one is a usage error.
func buildFilter(fs *flag.FlagSet, stderr io.Writer, when *whenFlags, source, key string) (*eventFilter, int) {
	f := &eventFilter{source: source, key: key}
	if key != "" {
		if err := filters.ValidatePattern(key); err != nil {
			return nil, usageError(fs, stderr, "--key: %v", err)
		}
	}
	if when != nil {
		var err error
		if f.since, f.until, err = when.resolve(time.Now()); err != nil {
			return nil, usageError(fs, stderr, "%v", err)
		}
	}
	return f, -1
}

func cmdLogShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("log show", "[-c FILE] SEQ...", stdout, stderr)
	describe(fs, "log show", "[-c FILE] SEQ...", "Prints the events with the given seqs, in full, as JSON lines.\n"+logLockNote)
	path := configFlag(fs)
	pos, code := parseInterleaved(fs, args, stdout)
	if code >= 0 {
		return code
	}
	seqs, err := seqList(pos)
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	if len(seqs) == 0 {
		return usageError(fs, stderr, "give one or more seqs")
	}
	return withLog(*path, stderr, "log show", func(_ *config.Config, st *store.Store) error {
		out := newJSONLines(stdout)
		var missing error
		for _, seq := range seqs {
			ev, err := st.Get(seq)
			if errors.Is(err, store.ErrNotFound) {
				missing = fmt.Errorf("seq %d is not in the log (it holds %d to %d)", seq, st.FirstSeq(), st.LastSeq())
				fmt.Fprintf(stderr, "router log show: %v\n", missing)
				continue
			}
			if err != nil {
				return err
			}
			if err := out.write(newLogRecord(ev)); err != nil {
				return err
			}
		}
		if missing != nil {
			return errReported
		}
		return nil
	})
}

// errReported is a failure whose message was already printed.
var errReported = errors.New("reported")

// withLog loads the configuration, opens its log read-only and runs fn on it.
func withLog(path string, stderr io.Writer, name string, fn func(*config.Config, *store.Store) error) int {
	cfg := app.LoadConfig(path, stderr)
	if cfg == nil {
		return exitFail
	}
	st, err := openReadOnly(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "router %s: %v\n", name, err)
		return exitFail
	}
	err = fn(cfg, st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitOK // interrupted by the user
	case !errors.Is(err, errReported):
		fmt.Fprintf(stderr, "router %s: %v\n", name, err)
	}
	return exitFail
}
