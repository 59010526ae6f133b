package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
)

const runHelp = `
Runs the router until SIGINT or SIGTERM, then stops gracefully. SIGHUP, router reload and
POST /api/v1/reload load the configuration file again and put it in force without a stop;
with --watch, so does any change to the file or to a module file it names.`

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "[-c FILE] [--watch]", stdout, stderr)
	describe(fs, "run", "[-c FILE] [--watch]", runHelp)
	path := configFlag(fs)
	watch := fs.Bool("watch", false, "reload when the configuration file or a module file changes")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	levels := new(slog.LevelVar)
	log := app.NewLogger(cfg, stderr, levels)
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	defer signal.Stop(hangup)
	if err := app.Run(ctx, cfg, log, app.Options{Hangup: hangup, Watch: *watch, LogLevels: levels}); err != nil {
		log.Error("router failed", "error", err)
		return exitFail
	}
	return exitOK
}
