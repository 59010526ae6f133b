package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wasmrouter/wasmrouter/console"
	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/contentapi"
	"github.com/wasmrouter/wasmrouter/router"
)

// Running is handed to Options.Started once the router is up.
type Running struct {
	AdminAddr string
	Engine    *router.Engine
	Reloader  *Reloader
}

// Options tune Run for tests.
type Options struct {
	// AdminAddr overrides the config's (e.g. "127.0.0.1:0" in tests).
	AdminAddr string
	// Started, when set, is called once everything is wired and the engine starts.
	Started func(Running)
	// Hangup delivers the signals that ask for a reload (SIGHUP).
	Hangup <-chan os.Signal
	// Watch reloads whenever the configuration file or a module file it names changes.
	Watch bool
	// LogLevels is the logger's level, set by a reload that changes router.log_level.
	LogLevels *slog.LevelVar
	// LookupEnv backs env() on reloads as at start; nil is the process environment.
	LookupEnv func(string) (string, bool)
}

// Run wires store, guests, clusters, engine and admin API, and runs until ctx ends, then stops
// gracefully.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options) error {
	adminAddr := cfg.Router.AdminAddr
	if opts.AdminAddr != "" {
		adminAddr = opts.AdminAddr
	}
	if err := admin.CheckAddr(adminAddr, cfg.Router.AdminToken); err != nil {
		return cfg.Errorf("router.admin_addr", "%w", err)
	}
	setMemoryLimit(cfg.Router.MemoryLimit, log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := NewCollectors(reg)

	st, err := openLog(ctx, cfg, log, m.Log, false)
	if err != nil {
		return logOpenError(cfg, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing event log", "error", err)
		}
	}()

	host, err := NewHost(ctx, cfg, log.With("component", "wasm"), m.Wasm)
	if err != nil {
		return fmt.Errorf("starting the WASM runtime: %w", err)
	}
	defer host.Close(context.Background())
	wasm := moduleHashes(cfg) // before compiling: see moduleHashes
	modules, diags := LoadModules(ctx, host, cfg, 0)
	// The reloader owns the modules of the generation in force; it closes them at the end.
	reloader := &Reloader{
		host: host, metrics: m.App, log: log.With("component", "reload"),
		lookupEnv: opts.LookupEnv, levels: opts.LogLevels,
		gen: &generation{
			n: 1, cfg: cfg, hash: configHash(cfg.File), loadedAt: time.Now().UTC(),
			modules: modules, wasm: wasm, roles: router.ModuleRoles(cfg),
		},
	}
	defer reloader.Close()
	if diags.HasErrors() {
		config.FormatDiagnostics(os.Stderr, diags)
		return errors.New("modules failed to load")
	}
	topo, err := router.NewTopology(cfg, modules)
	if err != nil {
		return err
	}

	tracer, stopTracer, err := startTracer(ctx, cfg, m.Tracing, log)
	if err != nil {
		return err
	}
	defer stopTracer()
	engine, _, err := engineOnBrokers(cfg, topo, st, m, log, tracer)
	if err != nil {
		return err
	}
	reloader.engine = engine
	m.Log.MaxSize.Set(float64(cfg.Store.MaxSize))
	m.App.SetReadiness(func() bool { return engine.Status().Ready })
	srv, err := admin.Listen(admin.Options{
		Addr: adminAddr, Token: cfg.Router.AdminToken, Gatherer: reg,
		Engine: engine, Replayer: replayAPI{engine: engine, host: host, log: log, tokenSet: cfg.Router.AdminToken != "", dir: cfg.Dir},
		DeadLetters: deadLetterAPI{engine: engine, store: st}, Logger: log.With("component", "admin"),
		Content: &contentapi.API{Engine: engine, Store: st}, Console: console.Handler(),
		Reloader: reloader,
	})
	if err != nil {
		return cfg.Errorf("router.admin_addr", "admin API: %w", err)
	}
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	adminDone := make(chan error, 1)
	go func() { adminDone <- srv.Serve(adminCtx) }()
	log.Info("admin API listening", "addr", srv.Addr())
	if opts.Started != nil {
		opts.Started(Running{AdminAddr: srv.Addr(), Engine: engine, Reloader: reloader})
	}
	triggersDone := reloader.serveTriggers(ctx, opts.Hangup, opts.Watch)
	pagesCtx, stopPages := context.WithCancel(ctx)
	defer stopPages()
	go releaseExePages(pagesCtx, func() bool { return engine.Status().Ready }, log)

	runErr := engine.Run(ctx)
	<-triggersDone
	stopAdmin()
	if err := <-adminDone; err != nil {
		log.Error("admin API", "error", err)
	}
	return runErr
}
