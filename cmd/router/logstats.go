package main

import (
	"context"
	"io"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/logquery"
)

func cmdLogStats(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("log stats", "[-c FILE]", stdout, stderr)
	describe(fs, "log stats", "[-c FILE]", "Prints one JSON object: event count, file size, seq and time range, events per\n"+
		"source, each (route, target) delivery position with its lag, the replay jobs that did not\n"+
		"reach their end (see router replay --resume), and dead-letter counts.\n"+logLockNote)
	path := configFlag(fs)
	if code := parseFlagsNoArgs(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	out := newJSONLines(stdout)
	return withRouterOrLog(*path, stderr, "log stats",
		func(c *adminClient) error {
			var s logquery.LogStats
			if err := c.do(ctx, "GET", "/api/v1/log/stats", nil, &s, 200); err != nil {
				return err
			}
			return out.write(s)
		},
		func(cfg *config.Config, st app.EventLog) error {
			s, err := logquery.Stats(cfg, st)
			if err != nil {
				return err
			}
			return out.write(s)
		})
}
