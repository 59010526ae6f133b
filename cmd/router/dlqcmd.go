package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "dlq", []command{
		{"list", "print dead-lettered events as JSON lines", cmdDLQList},
		{"replay", "send dead-lettered events through their routes again", cmdDLQReplay},
	}, args, stdout, stderr)
}

// addSelectionFlags declares the flags both subcommands take.
func addSelectionFlags(fs *flag.FlagSet) (route *string, since *string, all *bool) {
	route = fs.String("route", "", "only dead letters of this `ROUTE`")
	since = fs.String("since", "", "only dead letters recorded from this time on: a duration ago (`D|T`: 1h) or an RFC 3339 time")
	all = fs.Bool("all", false, "include dead letters already redriven")
	return route, since, all
}

const dlqListHelp = `
Prints dead letters as JSON lines, oldest first: by default those not redriven yet. With
--show, each carries its event ("event": routing key, headers, body, properties).

While the router runs, they are read through its admin API at router.admin_addr; while it is
stopped, from the event log directly.`

func cmdDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] [--route R] [--since D|T] [--all] [--limit N] [--show]"
	fs := newFlags("dlq list", synopsis, stdout, stderr)
	describe(fs, "dlq list", synopsis, dlqListHelp)
	path := configFlag(fs)
	route, since, all := addSelectionFlags(fs)
	limit := fs.Int("limit", app.DefaultDeadLetterLimit, "print at most `N` dead letters (0: no limit)")
	show := fs.Bool("show", false, "with each dead letter, its event: headers, body and properties (\"event\")")
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	sel := &app.DeadLetterSelection{Route: *route, All: *all}
	var err error
	if sel.Since, err = router.ParseWhen(*since, time.Now()); err != nil {
		return usageError(fs, stderr, "--since: %v", err)
	}
	if *limit < 0 {
		return usageError(fs, stderr, "--limit must not be negative")
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	out := newJSONLines(stdout)
	write := func(rec app.DeadLetterRecord) error { return out.write(rec) }
	// The router reads --since on its own clock, as replay's.
	query := url.Values{"since": {*since}, "all": {strconv.FormatBool(*all)}, "limit": {strconv.Itoa(*limit)}}
	if *route != "" {
		query.Set("route", *route)
	}
	err = listThroughRouter(ctx, cfg, query, *show, write)
	if errors.Is(err, errNoRouter) {
		err = listOffline(cfg, sel, *limit, *show, write)
	}
	if err != nil {
		fmt.Fprintf(stderr, "router dlq list: %v\n", err)
		return exitFail
	}
	return exitOK
}

// listThroughRouter lists a running router's dead letters; errNoRouter when none answers.
// With show, each comes with its event, read through the content API.
func listThroughRouter(ctx context.Context, cfg *config.Config, query url.Values, show bool, fn func(app.DeadLetterRecord) error) error {
	client, err := newAdminClient(cfg.Router.AdminAddr, cfg.Router.AdminToken)
	if err != nil {
		return err
	}
	if !show {
		return client.deadLetters(ctx, query, fn)
	}
	// The list is read whole first: the events are fetched after, on the same connection.
	var recs []app.DeadLetterRecord
	if err := client.deadLetters(ctx, query, func(rec app.DeadLetterRecord) error {
		recs = append(recs, rec)
		return nil
	}); err != nil {
		return err
	}
	for _, rec := range recs {
		ev, err := client.event(ctx, rec.Seq)
		switch {
		case errors.Is(err, errNotInLog):
			// Retention removed the event; the dead letter is shown without it.
		case err != nil:
			return fmt.Errorf("reading event %d: %v", rec.Seq, err) // not %w: errNoRouter would list again offline
		default:
			rec.Event = &ev
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// listOffline lists the dead letters of a stopped router's log.
func listOffline(cfg *config.Config, sel *app.DeadLetterSelection, limit int, show bool, fn func(app.DeadLetterRecord) error) (err error) {
	st, err := openReadOnly(cfg)
	if errors.Is(err, errLocked) {
		return lockedWithoutAdminAPI(cfg)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}()
	dls, err := app.SelectDeadLetters(st, sel, limit)
	if err != nil {
		return err
	}
	for _, dl := range dls {
		rec := app.NewDeadLetterRecord(dl)
		if show {
			ev, err := st.Get(dl.Seq)
			switch {
			case errors.Is(err, store.ErrNotFound):
				// Retention removed the event; the dead letter is shown without it.
			case err != nil:
				return err
			default:
				r := logquery.NewRecord(ev)
				rec.Event = &r
			}
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

const dlqReplayHelp = `
Sends dead-lettered events through their routes again, as they are configured now (after a
module fix, or once a target accepts them): each to the target it failed for, or to all of the
route's targets when a module failed it. Messages carry x-router-replay=true. A dead letter is
marked redriven once its event was delivered; one that fails again stays pending, and the
command then exits 1.

Select dead letters with --id, or with --route (and --since). While the router runs, the
redrive runs inside it, through the admin API at router.admin_addr (with router.admin_token);
while it is stopped, this command opens the event log itself and connects to the target
clusters. Progress goes to stderr; the result ("redriven N dead letters") to stdout.
Interrupting the command stops the redrive, offline or in the router.`

func cmdDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-c FILE] (--id N... | --route R [--since D|T]) [--all]"
	fs := newFlags("dlq replay", synopsis, stdout, stderr)
	describe(fs, "dlq replay", synopsis, dlqReplayHelp)
	path := configFlag(fs)
	var ids listFlag
	fs.Var(&ids, "id", "redrive the dead letter with this `ID` (repeatable, or comma-separated)")
	route, since, all := addSelectionFlags(fs)
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	sel := &app.DeadLetterSelection{Route: *route, All: *all}
	var err error
	if sel.IDs, err = seqList(ids); err != nil {
		return usageError(fs, stderr, "--id: %v", err)
	}
	if sel.Since, err = router.ParseWhen(*since, time.Now()); err != nil {
		return usageError(fs, stderr, "--since: %v", err)
	}
	if len(sel.IDs) == 0 && sel.Route == "" {
		return usageError(fs, stderr, "select dead letters with --id or --route")
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	body := app.RedriveBody{IDs: sel.IDs, Route: sel.Route, Since: *since, All: sel.All}
	var job router.ReplayProgress
	n, pending, err := redriveThroughRouter(ctx, cfg, body, stderr, &job)
	if errors.Is(err, errNoRouter) {
		n, pending, err = redriveOffline(ctx, cfg, sel, stderr, &job)
	}
	if err != nil {
		fmt.Fprintf(stderr, "router dlq replay: %v\n", err)
		return exitFail
	}
	if job.ID != "" {
		printJobReport(stderr, job)
	}
	fmt.Fprintf(stdout, "redriven %d dead letters\n", n)
	if pending > 0 {
		fmt.Fprintf(stderr, "router dlq replay: %d dead letters were not delivered and stay pending (router dlq list shows them)\n", pending)
		return exitFail
	}
	return exitOK
}

// idsPerQuery bounds the ids of one GET /api/v1/dlq, keeping its URL short.
const idsPerQuery = 1000

// redriveThroughRouter runs the redrive in a running router and counts how many of the
// dead letters it took are now marked redriven, and how many are not; errNoRouter when no
// router answers.
// The job's final report goes to job.
func redriveThroughRouter(ctx context.Context, cfg *config.Config, body app.RedriveBody, stderr io.Writer, job *router.ReplayProgress) (redriven, pending int, err error) {
	client, err := newAdminClient(cfg.Router.AdminAddr, cfg.Router.AdminToken)
	if err != nil {
		return 0, 0, err
	}
	id, ids, err := client.redrive(ctx, body)
	if err != nil || id == "" {
		return 0, 0, err
	}
	p, err := client.follow(ctx, id, "redrive", newProgress(stderr, "redriving (router at "+cfg.Router.AdminAddr+")"))
	if err != nil {
		return 0, 0, err
	}
	*job = p
	if p.State != "done" {
		return 0, 0, fmt.Errorf("redrive %s: %s", p.State, p.Error)
	}
	// The job marked what it delivered before it ended; read the marks back.
	count := func(rec app.DeadLetterRecord) error {
		if rec.Redriven {
			redriven++
		} else {
			pending++
		}
		return nil
	}
	for chunk := range slices.Chunk(ids, idsPerQuery) {
		query := url.Values{"ids": {joinIDs(chunk)}, "all": {"true"}, "limit": {"0"}}
		if err := client.deadLetters(ctx, query, count); err != nil {
			// Not %w: errNoRouter would make the caller redrive again offline.
			return 0, 0, fmt.Errorf("reading back what redrive %s marked: %v", id, err)
		}
	}
	return redriven, pending, nil
}

func joinIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}

// redriveOffline runs the selected dead letters through the engine on a stopped router's log
// and counts how many are now marked redriven, and how many are not.
func redriveOffline(ctx context.Context, cfg *config.Config, sel *app.DeadLetterSelection, stderr io.Writer, job *router.ReplayProgress) (redriven, pending int, err error) {
	off, err := openOffline(ctx, cfg, false, stderr)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := off.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	dls, err := app.SelectForRedrive(off.Store, sel)
	if err != nil || len(dls) == 0 {
		return 0, 0, err
	}
	engine, err := off.Engine()
	if err != nil {
		return 0, 0, err
	}
	var id string
	err = engine.RunOffline(ctx, func(ctx context.Context) error {
		if err := waitClusters(ctx, off.Clusters, stderr); err != nil {
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
	p, _ := engine.ReplayStatus(id)
	*job = p
	if p.State != "done" {
		return 0, 0, fmt.Errorf("redrive %s: %s", p.State, p.Error)
	}
	// The job marked what it delivered; read the marks back.
	ids := make([]uint64, len(dls))
	for i, dl := range dls {
		ids[i] = dl.ID
	}
	marked, err := app.SelectDeadLetters(off.Store, &app.DeadLetterSelection{IDs: ids, All: true}, 0)
	for _, dl := range marked {
		if dl.Redriven {
			redriven++
		} else {
			pending++
		}
	}
	return redriven, pending, err
}
