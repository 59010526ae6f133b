package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// cmdValidate checks everything `run` checks before it connects, and writes nothing: modules
// compile into memory, the store's directory is checked for access, not created. With
// --connect it also connects to each cluster and checks the credentials and permissions.
func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", "[-c FILE] [--connect]", stdout, stderr)
	path := configFlag(fs)
	connect := fs.Bool("connect", false, "also connect to each cluster: reachability, credentials, vhost and permissions on the sources' queues and the targets' exchanges")
	timeout := fs.Duration("timeout", 10*time.Second, "with --connect: how long to wait for each cluster (`D`)")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	log := slog.New(slog.DiscardHandler)
	host, err := app.NewCheckHost(ctx, log, wasmhost.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: starting the WASM runtime: %v\n", *path, err)
		return exitFail
	}
	defer host.Close(ctx)
	modules, diags := app.LoadModules(ctx, host, cfg, 1)
	defer app.CloseModules(ctx, modules)
	diags = append(diags, runtimeChecks(cfg)...)
	if !diags.HasErrors() && *connect {
		diags = append(diags, connectChecks(ctx, cfg, *timeout, stdout)...)
	}
	if len(diags) > 0 {
		config.FormatDiagnostics(stderr, diags)
	}
	if diags.HasErrors() {
		return exitFail
	}
	fmt.Fprintln(stdout, "ok")
	fmt.Fprintln(stdout, cfg.Summary())
	return exitOK
}

// runtimeChecks are the checks `run` makes on start-up beyond the configuration's own: the
// admin address, each cluster's URL and TLS files, and access to the store's path.
func runtimeChecks(cfg *config.Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(attr string, rng hcl.Range, err error) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: attr, Detail: err.Error(), Subject: rng.Ptr()})
	}
	if err := admin.CheckAddr(cfg.Router.AdminAddr, cfg.Router.AdminToken); err != nil {
		bad("router.admin_addr", cfg.At("router.admin_addr"), err)
	}
	for _, c := range cfg.Clusters {
		if err := amqpx.CheckCluster(c); err != nil {
			bad("cluster "+c.Name, c.Range, err)
		}
	}
	if cfg.Store.Backend != config.BackendStream {
		if err := checkStorePath(cfg.Store.Path); err != nil {
			bad("store.path", cfg.At("store.path"), err)
		}
	}
	return diags
}

// checkStorePath tells whether run could open (or create) the log at path, without creating
// anything: an existing file must be a regular, writable file; otherwise the nearest existing
// directory on the way must be writable, so that run can create the rest.
func checkStorePath(path string) error {
	info, err := os.Stat(path)
	switch {
	case err == nil && !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case err == nil:
		if err := syscall.Access(path, 2 /* W_OK */); err != nil {
			return fmt.Errorf("%s is not writable: %w", path, err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	dir := filepath.Dir(path)
	for {
		info, err := os.Stat(dir)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if err := syscall.Access(dir, 2|1 /* W_OK|X_OK */); err != nil {
				return fmt.Errorf("cannot create %s: directory %s is not writable: %w", path, dir, err)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("cannot create %s", path)
		}
		dir = parent
	}
}

// connectChecks connects to each cluster and checks what the router will need there.
func connectChecks(ctx context.Context, cfg *config.Config, timeout time.Duration, stdout io.Writer) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, c := range cfg.Clusters {
		probe := amqpx.ProbeSpec{Cluster: c}
		for _, s := range cfg.Sources {
			if s.Cluster == c.Name {
				probe.Queues = append(probe.Queues, s.Queue)
				probe.Exchanges = append(probe.Exchanges, s.Exchange)
			}
		}
		for _, t := range cfg.Targets {
			for _, name := range t.Clusters {
				if name == c.Name {
					probe.Exchanges = append(probe.Exchanges, t.Exchange)
				}
			}
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := amqpx.Probe(pctx, probe)
		cancel()
		if err != nil {
			rng := cfg.At("cluster." + c.Name + ".url")
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "cluster." + c.Name + ".url",
				Detail: err.Error(), Subject: &rng})
			continue
		}
		fmt.Fprintf(stdout, "cluster %s: connected, %d queues and %d exchanges checked\n", c.Name, len(probe.Queues), len(probe.Exchanges))
	}
	return diags
}
