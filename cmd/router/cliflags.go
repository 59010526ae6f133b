package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// describe gives a command's --help a paragraph between the synopsis and the flags.
func describe(fs *flag.FlagSet, name, synopsis, text string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(text))
		fs.PrintDefaults()
	}
}

// parseFlagsNoArgs is parseFlags for a command that takes flags only: an argument left over
// is a usage error.
func parseFlagsNoArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	return -1
}

// parseFlags is parse for these commands, printing --help once, on stdout: the flag package
// itself prints the usage on the error output before it returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) int {
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		usage()
		return exitOK
	case err != nil:
		usage() // after the flag package's one-line complaint, on stderr
		return exitUsage
	}
	return -1
}

// usageError reports a bad flag value or argument the way the flag package does, and gives
// the exit status for it.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", fs.Name())
	return exitUsage
}

// parseInterleaved parses flags that may come before, between or after positional arguments
// (`router log show 4 5 -c x.hcl`) and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, int) {
	var pos []string
	for {
		if code := parseFlags(fs, args, stdout); code >= 0 {
			return nil, code
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, -1
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), -1
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag is a repeatable string flag; commas separate values too (--route a,b).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// seqList parses decimal seqs or IDs (each > 0).
func seqList(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		for _, s := range strings.Split(a, ",") {
			if s == "" {
				continue
			}
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("%q is not a positive number", s)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// whenFlags are --since and --until (docs/cli.md: a duration meaning "that long ago", days
// allowed, or an RFC 3339 time).
type whenFlags struct{ since, until *string }

func addWhenFlags(fs *flag.FlagSet, what string) whenFlags {
	return whenFlags{
		since: fs.String("since", "", what+" from this time on: a duration ago (`D|T`: 15m, 7d) or an RFC 3339 time"),
		until: fs.String("until", "", what+" up to this time: a duration ago (`D|T`) or an RFC 3339 time"),
	}
}

// resolve checks both values against now; a bad one is a usage error.
func (w whenFlags) resolve(now time.Time) (since, until time.Time, err error) {
	if since, err = router.ParseWhen(*w.since, now); err != nil {
		return since, until, fmt.Errorf("--since: %w", err)
	}
	if until, err = router.ParseWhen(*w.until, now); err != nil {
		return since, until, fmt.Errorf("--until: %w", err)
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return since, until, errors.New("--until is before --since")
	}
	return since, until, nil
}

// cliLogger shows the engine's warnings and errors on stderr; progress and results are the
// command's own output.
func cliLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openReadOnly opens the config's event log for inspection, explaining the usual failures.
func openReadOnly(cfg *config.Config) (app.EventLog, error) {
	st, err := app.OpenLog(context.Background(), cfg, nil, true)
	return st, explainOpen(cfg, err)
}

// explainOpen turns store.Open's failures into messages that say what to do.
func explainOpen(cfg *config.Config, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%w: the event log %s is locked by a running router (the file allows one "+
			"process at a time); stop the router to inspect it, or read the log's range, positions and "+
			"lag from its admin API: GET http://%s/api/v1/status", errLocked, cfg.Store.Path, cfg.Router.AdminAddr)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("there is no event log at %s (store.path of %s); has a router run with this configuration?", cfg.Store.Path, cfg.File)
	default:
		return err
	}
}

// lockedWithoutAdminAPI explains a log that a router holds while its admin API, which the
// commands that work through it tried first, does not answer.
func lockedWithoutAdminAPI(cfg *config.Config) error {
	return fmt.Errorf("%w: the event log %s is locked by a running router, but its admin API at %s does not answer; "+
		"check router.admin_addr in %s (and that the router's admin API is up), or stop the router to work on the log offline",
		errLocked, cfg.Store.Path, cfg.Router.AdminAddr, cfg.File)
}

// errLocked marks a log that a running router holds.
var errLocked = errors.New("event log locked")
