package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
)

const reloadHelp = `
Makes the running router load its configuration file again (the one it was started with, and
the module files it names) and put it in force without stopping: all or nothing. Prints one
line per change, then the new generation; or the diagnostics, exiting 1, with the running
configuration untouched. -c only says where the router's admin API is (router.admin_addr)
and its token (router.admin_token).

--dry-run checks and prepares the configuration but applies nothing. --history D adds what the
change would have done to the last D of the log (the report of router replay --dry-run
--with-config).`

func cmdReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reload", "[-c FILE] [--dry-run] [--history D]", stdout, stderr)
	describe(fs, "reload", "[-c FILE] [--dry-run] [--history D]", reloadHelp)
	path := configFlag(fs)
	dryRun := fs.Bool("dry-run", false, "check and prepare, apply nothing")
	history := fs.String("history", "", "add the what-if over this much of the log (a duration, e.g. 24h)")
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if *history != "" {
		if d, err := time.ParseDuration(*history); err != nil || d <= 0 {
			return usageError(fs, stderr, "--history %q is not a positive duration", *history)
		}
	}
	// The file may be the very candidate that has errors: the router reports them. Its admin
	// address and token are read as far as the file allows.
	addr, token := config.DefaultAdminAddr, ""
	if cfg, _ := config.Load(*path, nil); cfg != nil {
		addr, token = cfg.Router.AdminAddr, cfg.Router.AdminToken
	}
	client, err := newAdminClient(addr, token)
	if err != nil {
		fmt.Fprintf(stderr, "router reload: %v\n", err)
		return exitFail
	}
	body, _ := json.Marshal(app.ReloadRequest{DryRun: *dryRun, History: *history})
	var ans app.ReloadAnswer
	if err := client.do(ctx, http.MethodPost, "/api/v1/reload", body, &ans, http.StatusOK, http.StatusUnprocessableEntity); err != nil {
		fmt.Fprintf(stderr, "router reload: %v\n", err)
		return exitFail
	}
	if len(ans.Diagnostics) > 0 {
		for _, d := range ans.Diagnostics {
			fmt.Fprintln(stderr, d)
		}
		fmt.Fprintf(stderr, "reload refused; generation %d keeps running\n", ans.Generation)
		return exitFail
	}
	printReload(stdout, ans, *dryRun)
	return exitOK
}

func printReload(w io.Writer, ans app.ReloadAnswer, dryRun bool) {
	if len(ans.Changes) == 0 {
		fmt.Fprintln(w, "no changes")
	}
	for _, c := range ans.Changes {
		fmt.Fprintln(w, c.String())
	}
	names := make([]string, 0, len(ans.Abandoned))
	for n := range ans.Abandoned {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %s: %d events left undelivered (they stay in the log: router replay delivers them)\n", n, ans.Abandoned[n])
	}
	if ans.WhatIf != nil {
		printWhatIf(w, ans.WhatIf)
	}
	if dryRun {
		fmt.Fprintf(w, "would apply generation %d\n", ans.Generation)
		return
	}
	fmt.Fprintf(w, "generation %d\n", ans.Generation)
}

// printWhatIf prints what the new configuration would have done to the history looked at.
func printWhatIf(w io.Writer, rep *router.DryRunReport) {
	fmt.Fprintf(w, "what-if over the history: %d events looked at\n", rep.Events)
	if rep.Diff != nil {
		printDiff(w, "the new configuration", rep.Diff)
	}
}
