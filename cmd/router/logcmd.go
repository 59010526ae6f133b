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
	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/store"
)

const logLockNote = `
While the router runs, these commands read the log through its admin API at
router.admin_addr (with router.admin_token), since the running router holds the log's file;
while it is stopped, they open the file read-only.`

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
	return runNamed(ctx, subs, args, usage, "router "+group+": unknown subcommand", stdout, stderr)
}

func cmdLogList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] [--since D|T] [--until D|T] [--from-seq N] [--to-seq N] [--source S] [--key PATTERN] [--header NAME[:VALUE]]... [--limit N]"
	fs := newFlags("log list", synopsis, stdout, stderr)
	describe(fs, "log list", synopsis, "Prints logged events as JSON lines, oldest first.\n"+logLockNote)
	path := configFlag(fs)
	when := addWhenFlags(fs, "events ingested")
	from := fs.Uint64("from-seq", 0, "first seq `N`")
	to := fs.Uint64("to-seq", 0, "last seq `N`")
	source := fs.String("source", "", "only events of this `SOURCE`")
	key := fs.String("key", "", "only events whose routing key matches this AMQP topic `PATTERN` (order.*, payment.#)")
	var headers listFlag
	fs.Var(&headers, "header", "only events with this header (`NAME` or NAME:VALUE; repeatable, all must match)")
	limit := fs.Int("limit", 100, "print at most `N` events (0: no limit)")
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	q, code := buildQuery(fs, stderr, &when, *source, *key, headers)
	if code >= 0 {
		return code
	}
	q.From, q.To, q.Limit = *from, *to, *limit
	switch {
	case *limit < 0:
		return usageError(fs, stderr, "--limit must not be negative")
	case *to > 0 && *from > *to:
		return usageError(fs, stderr, "--from-seq %d is after --to-seq %d", *from, *to)
	}
	out := newJSONLines(stdout)
	write := func(rec logquery.Record) error { return out.write(rec) }
	return withRouterOrLog(*path, stderr, "log list",
		func(c *adminClient) error { return c.listEvents(ctx, q, write) },
		func(_ *config.Config, st app.EventLog) error {
			_, err := logquery.List(ctx, st, q, 0, func(ev *event.Event) error { return write(logquery.NewRecord(ev)) })
			return err
		})
}

// buildQuery checks the filter flags shared by list and tail (when is nil for tail); a bad
// one is a usage error.
func buildQuery(fs *flag.FlagSet, stderr io.Writer, when *whenFlags, source, key string, headers []string) (*logquery.Query, int) {
	q := &logquery.Query{Source: source, Key: key}
	if key != "" {
		if err := filters.ValidatePattern(key); err != nil {
			return nil, usageError(fs, stderr, "--key: %v", err)
		}
	}
	for _, h := range headers {
		m, err := logquery.ParseHeaderMatch(h)
		if err != nil {
			return nil, usageError(fs, stderr, "--header %v", err)
		}
		q.Headers = append(q.Headers, m)
	}
	if when != nil {
		var err error
		if q.Since, q.Until, err = when.resolve(time.Now()); err != nil {
			return nil, usageError(fs, stderr, "%v", err)
		}
	}
	return q, -1
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
	out := newJSONLines(stdout)
	missing := func(err error) { fmt.Fprintf(stderr, "router log show: %v\n", err) }
	return withRouterOrLog(*path, stderr, "log show",
		func(c *adminClient) error {
			var gone error
			for _, seq := range seqs {
				rec, err := c.event(ctx, seq)
				if errors.Is(err, errNotInLog) {
					gone = err
					missing(err)
					continue
				}
				if err != nil {
					return err
				}
				if err := out.write(rec); err != nil {
					return err
				}
			}
			if gone != nil {
				return errReported
			}
			return nil
		},
		func(_ *config.Config, st app.EventLog) error {
			var gone error
			for _, seq := range seqs {
				ev, err := st.Get(seq)
				if errors.Is(err, store.ErrNotFound) {
					gone = fmt.Errorf("seq %d is not in the log (it holds %d to %d)", seq, st.FirstSeq(), st.LastSeq())
					missing(gone)
					continue
				}
				if err != nil {
					return err
				}
				if err := out.write(logquery.NewRecord(ev)); err != nil {
					return err
				}
			}
			if gone != nil {
				return errReported
			}
			return nil
		})
}

// errReported is a failure whose message was already printed.
var errReported = errors.New("reported")

// withRouterOrLog loads the configuration and runs online against the running router's
// admin API or, when no router answers there, offline on the log opened read-only.
func withRouterOrLog(path string, stderr io.Writer, name string, online func(*adminClient) error, offline func(*config.Config, app.EventLog) error) int {
	cfg := app.LoadConfig(path, stderr)
	if cfg == nil {
		return exitFail
	}
	client, err := newAdminClient(cfg.Router.AdminAddr, cfg.Router.AdminToken)
	if err == nil {
		err = online(client)
	}
	if errors.Is(err, errNoRouter) {
		return withLogConfig(cfg, stderr, name, offline)
	}
	return exitCode(stderr, name, err)
}

// withLog loads the configuration, opens its log read-only and runs fn on it.
func withLog(path string, stderr io.Writer, name string, fn func(*config.Config, app.EventLog) error) int {
	cfg := app.LoadConfig(path, stderr)
	if cfg == nil {
		return exitFail
	}
	return withLogConfig(cfg, stderr, name, fn)
}

// withLogConfig opens cfg's log read-only and runs fn on it.
func withLogConfig(cfg *config.Config, stderr io.Writer, name string, fn func(*config.Config, app.EventLog) error) int {
	st, err := openReadOnly(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "router %s: %v\n", name, err)
		return exitFail
	}
	err = fn(cfg, st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return exitCode(stderr, name, err)
}

// exitCode reports err (unless already reported) and gives the exit status for it.
func exitCode(stderr io.Writer, name string, err error) int {
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
