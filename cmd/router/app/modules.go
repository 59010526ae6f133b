// Package app wires the router's parts together (store, guests, clusters, engine, admin API)
// for cmd/router and for in-process end-to-end tests.
package app

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// LoadConfig loads and checks the file, printing diagnostics to stderr. nil means exit 1.
func LoadConfig(path string, stderr io.Writer) *config.Config {
	cfg, diags := config.Load(path, nil)
	if len(diags) > 0 {
		config.FormatDiagnostics(stderr, diags)
	}
	if diags.HasErrors() {
		return nil
	}
	return cfg
}

// NewLogger builds the logger the config asks for. Its level is levels, which a reload that
// changes router.log_level sets (see Options.LogLevels).
func NewLogger(cfg *config.Config, w io.Writer, levels *slog.LevelVar) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Router.LogLevel))
	levels.Set(level)
	opts := &slog.HandlerOptions{Level: levels}
	if cfg.Router.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// wasmCacheDir keeps compiled guests next to the log, so restarts skip compilation; a router
// whose log is a stream keeps them where the bbolt log would be, in data/ beside the
// configuration.
func wasmCacheDir(cfg *config.Config) string {
	if cfg.Store.Path == "" {
		return filepath.Join(cfg.Dir, filepath.Dir(config.DefaultStorePath), "wasm-cache")
	}
	return filepath.Join(filepath.Dir(cfg.Store.Path), "wasm-cache")
}

// LoadModules compiles and instantiates every module, several at a time, checking each has
// the entry points its routes need. The host logs a line per module (compiled or taken from
// the cache, and how long it took). Problems come back as diagnostics at the module's path
// attribute, in the configuration's order.
func LoadModules(ctx context.Context, host *wasmhost.Host, cfg *config.Config, poolOverride int) (map[string]*wasmhost.Module, hcl.Diagnostics) {
	roles := router.ModuleRoles(cfg)
	loaded := make([]*wasmhost.Module, len(cfg.Modules))
	errs := make([]*hcl.Diagnostic, len(cfg.Modules))
	// Compiling is CPU-bound: one module per core at a time.
	slots := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for i, ms := range cfg.Modules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			loaded[i], errs[i] = loadModule(ctx, host, ms, roles[ms.Name], poolOverride, cfg.Router.MaxMessageSize)
		}()
	}
	wg.Wait()
	modules := make(map[string]*wasmhost.Module, len(cfg.Modules))
	var diags hcl.Diagnostics
	for i, ms := range cfg.Modules {
		if errs[i] != nil {
			diags = append(diags, errs[i])
			continue
		}
		modules[ms.Name] = loaded[i]
	}
	return modules, diags
}

// loadModule compiles and instantiates one module for roles; a failure is a diagnostic at the
// module's path attribute.
func loadModule(ctx context.Context, host *wasmhost.Host, ms config.ModuleSpec, roles []wasmhost.Role, poolOverride int, maxMessageSize int64) (*wasmhost.Module, *hcl.Diagnostic) {
	pool := ms.PoolSize
	if poolOverride > 0 {
		pool = poolOverride
	}
	r := slices.Clone(roles)
	slices.Sort(r)
	m, err := host.Load(ctx, wasmhost.ModuleConfig{
		Name: ms.Name, Path: ms.Path, Config: ms.Config, Timeout: ms.Timeout,
		MaxMemory: ms.MaxMemory, PoolSize: pool, Roles: r, MaxMessageSize: maxMessageSize,
	})
	if err != nil {
		rng := ms.PathRange
		detail := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			detail += " (`make wasm` builds the examples)"
		}
		return nil, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "invalid module", Detail: detail, Subject: &rng}
	}
	return m, nil
}

// CloseModules releases loaded guests.
func CloseModules(ctx context.Context, modules map[string]*wasmhost.Module) {
	for _, m := range modules {
		_ = m.Close(ctx)
	}
}

// NewCheckHost starts a WASM runtime that keeps compiled code in memory only, for commands
// that must not write to disk (validate).
func NewCheckHost(ctx context.Context, log *slog.Logger, m *wasmhost.Metrics) (*wasmhost.Host, error) {
	return wasmhost.New(ctx, wasmhost.Options{Logger: log, Metrics: m})
}

// NewHost starts the WASM runtime with the on-disk compilation cache.
func NewHost(ctx context.Context, cfg *config.Config, log *slog.Logger, m *wasmhost.Metrics) (*wasmhost.Host, error) {
	return wasmhost.New(ctx, wasmhost.Options{CacheDir: wasmCacheDir(cfg), Logger: log, Metrics: m})
}
