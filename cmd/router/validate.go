package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
)

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", "[-c FILE]", stdout, stderr)
	path := configFlag(fs)
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	log := slog.New(slog.DiscardHandler)
	host, err := app.NewHost(ctx, cfg, log, metrics.New(prometheus.NewRegistry()))
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: starting the WASM runtime: %v\n", *path, err)
		return exitFail
	}
	defer host.Close(ctx)
	modules, diags := app.LoadModules(ctx, host, cfg, 1)
	defer app.CloseModules(ctx, modules)
	if len(diags) > 0 {
		config.FormatDiagnostics(stderr, diags)
		return exitFail
	}
	fmt.Fprintln(stdout, "ok")
	fmt.Fprintln(stdout, cfg.Summary())
	return exitOK
}
