package main

import (
	"context"
	"io"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "[-c FILE]", stdout, stderr)
	path := configFlag(fs)
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	log := app.NewLogger(cfg, stderr)
	if err := app.Run(ctx, cfg, log, app.Options{}); err != nil {
		log.Error("router failed", "error", err)
		return exitFail
	}
	return exitOK
}
