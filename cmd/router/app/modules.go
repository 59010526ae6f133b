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
	"slices"
	"sort"

	"github.com/hashicorp/hcl/v2"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
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

// wasmCacheDir keeps compiled guests next to the log, so restarts skip compilation.
func wasmCacheDir(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Store.Path), "wasm-cache")
}

// LoadModules compiles and instantiates every module, checking each has the entry points its
// routes need. Problems come back as diagnostics at the module's path attribute.
func LoadModules(ctx context.Context, host *wasmhost.Host, cfg *config.Config, poolOverride int) (map[string]*wasmhost.Module, hcl.Diagnostics) {
	roles := router.ModuleRoles(cfg)
	modules := make(map[string]*wasmhost.Module, len(cfg.Modules))
	var diags hcl.Diagnostics
	for _, ms := range cfg.Modules {
		m, d := loadModule(ctx, host, ms, roles[ms.Name], poolOverride, cfg.Router.MaxMessageSize)
		if d != nil {
			diags = append(diags, d)
			continue
		}
		modules[ms.Name] = m
	}
	return modules, diags
}

// loadModule compiles and instantiates one module for roles.
func loadModule(ctx context.Context, host *wasmhost.Host, ms config.ModuleSpec, roles []wasmhost.Role, poolOverride int, maxMessageSize int64) (*wasmhost.Module, *hcl.Diagnostic) {
	pool := ms.PoolSize
	if poolOverride > 0 {
		pool = poolOverride
	}
	r := slices.Clone(roles)
	sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
	m, err := host.Load(ctx, wasmhost.ModuleConfig{
		Name: ms.Name, Path: ms.Path, Config: ms.Config, Timeout: ms.Timeout,
		MaxMemory: ms.MaxMemory, PoolSize: pool, Roles: r, MaxMessageSize: maxMessageSize,
	})
	if err != nil {
		rng := ms.PathRange
		detail := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			detail += " (is the module built? `make wasm` builds the examples)"
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
func NewCheckHost(ctx context.Context, log *slog.Logger, m *metrics.Metrics) (*wasmhost.Host, error) {
	return wasmhost.New(ctx, wasmhost.Options{Logger: log, Metrics: m})
}

// NewHost starts the WASM runtime with the on-disk compilation cache.
func NewHost(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*wasmhost.Host, error) {
	return wasmhost.New(ctx, wasmhost.Options{CacheDir: wasmCacheDir(cfg), Logger: log, Metrics: m})
}
