package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "dlq", []command{
		{"list", "print dead-lettered events as JSON lines", cmdDLQList},
		{"replay", "send dead-lettered events through their routes again (router stopped)", cmdDLQReplay},
	}, args, stdout, stderr)
}

// deadLetterRecord is one line of `router dlq list`.
type deadLetterRecord struct {
	ID       uint64 `json:"id"`
	Route    string `json:"route"`
	Target   string `json:"target"` // "" when a module failed the event (every target missed it)
	Seq      uint64 `json:"seq"`
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	Time     string `json:"time"`
	Redriven bool   `json:"redriven"`
}

// dlqSelection picks dead letters: by id, or by route and age; redriven ones only with all.
type dlqSelection struct {
	ids   []uint64
	route string
	since time.Time
	all   bool
}

func (s *dlqSelection) match(dl store.DeadLetter) bool {
	return (len(s.ids) == 0 || slices.Contains(s.ids, dl.ID)) &&
		(s.route == "" || dl.Route == s.route) &&
		(s.since.IsZero() || !dl.Time.Before(s.since)) &&
		(s.all || !dl.Redriven)
}

// selectDeadLetters returns the matching dead letters in ID order, at most limit (0: all).
func selectDeadLetters(st *store.Store, sel *dlqSelection, limit int) ([]store.DeadLetter, error) {
	var out []store.DeadLetter
	err := st.DeadLetters(1, 0, func(dl store.DeadLetter) bool {
		if sel.match(dl) {
			out = append(out, dl)
		}
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// addSelectionFlags declares the flags both subcommands take.
func addSelectionFlags(fs *flag.FlagSet) (route *string, since *string, all *bool) {
	route = fs.String("route", "", "only dead letters of this `ROUTE`")
	since = fs.String("since", "", "only dead letters recorded from this time on: a duration ago (`D|T`: 1h) or an RFC 3339 time")
	all = fs.Bool("all", false, "include dead letters already redriven")
	return route, since, all
}

func cmdDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] [--route R] [--since D|T] [--all] [--limit N]"
	fs := newFlags("dlq list", synopsis, stdout, stderr)
	describe(fs, "dlq list", synopsis, "Prints dead letters as JSON lines, oldest first: by default those not redriven yet.\n"+logLockNote)
	path := configFlag(fs)
	route, since, all := addSelectionFlags(fs)
	limit := fs.Int("limit", 100, "print at most `N` dead letters (0: no limit)")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	sel := &dlqSelection{route: *route, all: *all}
	var err error
	if sel.since, err = router.ParseWhen(*since, time.Now()); err != nil {
		return usageError(fs, stderr, "--since: %v", err)
	}
	if *limit < 0 {
		return usageError(fs, stderr, "--limit must not be negative")
	}
	return withLog(*path, stderr, "dlq list", func(_ *config.Config, st *store.Store) error {
		dls, err := selectDeadLetters(st, sel, *limit)
		if err != nil {
			return err
		}
		out := newJSONLines(stdout)
		for _, dl := range dls {
			rec := deadLetterRecord{
				ID: dl.ID, Route: dl.Route, Target: dl.Target, Seq: dl.Seq, Reason: dl.Reason,
				Attempts: dl.Attempts, Time: dl.Time.UTC().Format(time.RFC3339Nano), Redriven: dl.Redriven,
			}
			if err := out.write(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

const dlqReplayHelp = `
Sends dead-lettered events through their routes again, as they are configured now (after a
module fix, or once a target accepts them): each to the target it failed for, or to all of the
route's targets when a module failed it. Messages carry x-router-replay=true. A dead letter is
marked redriven once its event was delivered; one that fails again stays pending.

Select dead letters with --id, or with --route (and --since). The redrive runs in this
process, on the log of a stopped router (the admin API has no redrive call): while the router
runs, the log is locked and this command says so.`

func cmdDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] (--id N... | --route R [--since D|T]) [--all]"
	fs := newFlags("dlq replay", synopsis, stdout, stderr)
	describe(fs, "dlq replay", synopsis, dlqReplayHelp)
	path := configFlag(fs)
	var ids listFlag
	fs.Var(&ids, "id", "redrive the dead letter with this `ID` (repeatable, or comma-separated)")
	route, since, all := addSelectionFlags(fs)
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	sel := &dlqSelection{route: *route, all: *all}
	var err error
	if sel.ids, err = seqList(ids); err != nil {
		return usageError(fs, stderr, "--id: %v", err)
	}
	if sel.since, err = router.ParseWhen(*since, time.Now()); err != nil {
		return usageError(fs, stderr, "--since: %v", err)
	}
	if len(sel.ids) == 0 && sel.route == "" {
		return usageError(fs, stderr, "select dead letters with --id or --route")
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	n, pending, err := redrive(ctx, cfg, sel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "router dlq replay: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "redriven %d dead letters\n", n)
	if pending > 0 {
		fmt.Fprintf(stderr, "router dlq replay: %d dead letters were not delivered and stay pending (router dlq list shows them)\n", pending)
		return exitFail
	}
	return exitOK
}

// redrive runs the selected dead letters through the engine offline and counts how many are
// now marked redriven, and how many are not.
func redrive(ctx context.Context, cfg *config.Config, sel *dlqSelection, stderr io.Writer) (redriven, pending int, err error) {
	off, err := app.OpenOffline(ctx, cfg, cliLogger(stderr), false)
	if errors.Is(err, store.ErrLocked) {
		return 0, 0, fmt.Errorf("%w: the event log %s is locked by a running router; stop it to redrive dead letters "+
			"(the admin API at %s has no redrive call)", errLocked, cfg.Store.Path, cfg.Router.AdminAddr)
	}
	if err != nil {
		return 0, 0, explainOpen(cfg, err)
	}
	defer func() {
		if cerr := off.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	dls, err := selectDeadLetters(off.Store, sel, 0)
	if err != nil {
		return 0, 0, err
	}
	if missing := missingIDs(sel.ids, dls); len(missing) > 0 {
		return 0, 0, fmt.Errorf("no dead letter with id %v to redrive (redriven ones need --all)", missing)
	}
	if len(dls) == 0 {
		return 0, 0, nil
	}
	engine, err := off.Engine()
	if err != nil {
		return 0, 0, err
	}
	var id string
	err = engine.RunOffline(ctx, func(ctx context.Context) error {
		if err := waitClusters(ctx, engine, stderr); err != nil {
			return err
		}
		var err error
		if id, err = engine.StartRedrive(dls); err != nil {
			return err
		}
		return followLocal(ctx, engine, id, newProgress(stderr, "redriving"))
	})
	if err != nil {
		return 0, 0, err
	}
	if p, _ := engine.ReplayStatus(id); p.State != "done" {
		return 0, 0, fmt.Errorf("redrive %s: %s", p.State, p.Error)
	}
	// The job marked what it delivered; read the marks back.
	want := map[uint64]bool{}
	for _, dl := range dls {
		want[dl.ID] = true
	}
	err = off.Store.DeadLetters(dls[0].ID, 0, func(dl store.DeadLetter) bool {
		if want[dl.ID] {
			if dl.Redriven {
				redriven++
			} else {
				pending++
			}
		}
		return dl.ID < dls[len(dls)-1].ID
	})
	return redriven, pending, err
}

func missingIDs(ids []uint64, found []store.DeadLetter) []uint64 {
	var missing []uint64
	for _, id := range ids {
		if !slices.ContainsFunc(found, func(dl store.DeadLetter) bool { return dl.ID == id }) {
			missing = append(missing, id)
		}
	}
	return missing
}
