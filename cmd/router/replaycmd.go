package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
)

const replaySynopsis = "[-c FILE] [--route R]... [--target T] [--since D|T] [--until D|T] " +
	"[--from-seq N] [--to-seq N] [--rate N] [--dry-run [--with-config FILE]] [--json]\n" +
	"       router replay [-c FILE] --resume ID [--rate N] [--json]"

const replayHelp = `
Re-delivers logged events through the routes as they are configured now; replayed messages
carry the header x-router-replay=true and their original message ids. A dry run delivers
nothing and reports what a replay would deliver; with --with-config it also reports where a
candidate configuration would decide differently.

While the router runs, the replay runs inside it, through the admin API at router.admin_addr
(with router.admin_token). While it is stopped, this command opens the event log itself and
connects to the target clusters (a dry run connects to no broker). Progress goes to stderr;
the result ("replayed N events", "would replay N events") to stdout. Interrupting the command
stops the replay, offline or in the router.

A replay that does not reach its end (interrupted, stopped, failed, or cut short by a crash or
a stop of the router) keeps its position in the log: --resume ID continues it after the last
event its targets confirmed, with the same selection (some events just before that point may
be delivered twice).`

// pollEvery is how often a running job's progress is fetched.
const pollEvery = 200 * time.Millisecond

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("replay", replaySynopsis, stdout, stderr)
	describe(fs, "replay", replaySynopsis, replayHelp)
	path := configFlag(fs)
	var routes listFlag
	fs.Var(&routes, "route", "replay only this `ROUTE` (repeatable; default: every route)")
	target := fs.String("target", "", "replay only to this `TARGET`")
	when := addWhenFlags(fs, "events ingested")
	from := fs.Uint64("from-seq", 0, "first log sequence number `N` to replay")
	to := fs.Uint64("to-seq", 0, "last log sequence number `N` to replay (default: the last one when the replay starts)")
	rate := fs.Float64("rate", 0, "at most `N` events per second (0: no limit)")
	dryRun := fs.Bool("dry-run", false, "deliver nothing; report what a replay would deliver")
	withConfig := fs.String("with-config", "", "with --dry-run: compare against this candidate configuration `FILE`")
	asJSON := fs.Bool("json", false, "print the job's final state as one JSON object instead of text")
	resume := fs.String("resume", "", "continue the unfinished replay job `ID` (it keeps its selection; --rate may change)")
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if _, _, err := when.resolve(time.Now()); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	switch {
	case *resume != "" && (len(routes) > 0 || *target != "" || *when.since != "" || *when.until != "" || *from != 0 || *to != 0 || *dryRun):
		return usageError(fs, stderr, "--resume takes no selection: the job keeps its own")
	case *withConfig != "" && !*dryRun:
		return usageError(fs, stderr, "--with-config needs --dry-run")
	case *rate < 0:
		return usageError(fs, stderr, "--rate must not be negative")
	case *to > 0 && *from > *to:
		return usageError(fs, stderr, "--from-seq %d is after --to-seq %d", *from, *to)
	}
	body := app.ReplayBody{ReplayRequest: router.ReplayRequest{
		Routes: routes, Target: *target, Since: *when.since, Until: *when.until,
		From: *from, To: *to, Rate: *rate, DryRun: *dryRun, Resume: *resume,
	}}
	if body.Routes == nil {
		body.Routes = []string{}
	}
	if *withConfig != "" {
		abs, err := filepath.Abs(*withConfig)
		if err != nil {
			fmt.Fprintf(stderr, "router replay: %v\n", err)
			return exitFail
		}
		body.WithConfig = abs // the router resolves it on its own machine, in its own directory
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	out := replayOutput{stdout: stdout, stderr: stderr, json: *asJSON, dryRun: *dryRun, candidate: *withConfig}
	p, err := replayThroughRouter(ctx, cfg, body, stderr)
	if errors.Is(err, errNoRouter) {
		p, err = replayOffline(ctx, cfg, body, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "router replay: %v\n", err)
		return exitFail
	}
	return out.result(p)
}

// replayThroughRouter runs the job in a running router; errNoRouter when none answers.
func replayThroughRouter(ctx context.Context, cfg *config.Config, body app.ReplayBody, stderr io.Writer) (router.ReplayProgress, error) {
	client, err := newAdminClient(cfg.Router.AdminAddr, cfg.Router.AdminToken)
	if err != nil {
		return router.ReplayProgress{}, err
	}
	id, err := client.startReplay(ctx, body)
	if err != nil {
		return router.ReplayProgress{}, err
	}
	view := newProgress(stderr, jobLabel(body.DryRun, id)+" (router at "+cfg.Router.AdminAddr+")")
	return client.follow(ctx, id, "replay", view)
}

// jobLabel names a job in its progress lines; a replay's id is shown, since --resume takes it.
func jobLabel(dryRun bool, id string) string {
	if dryRun {
		return "dry run"
	}
	return "replaying (job " + id + ")"
}
