// Package wasmhost runs WebAssembly guests (docs/guest-abi.md) for the router: one wazero
// runtime, each module compiled once and served by a bounded pool of instances, with per-call
// timeouts, per-module memory limits and fast host functions. abi.go writes the ABI down.
package wasmhost

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Options configure a Host.
type Options struct {
	// CacheDir keeps compiled modules on disk across restarts; "" keeps them in memory only.
	CacheDir string
	// Logger receives host messages and guest output (log, stdout, stderr); nil discards them.
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
}

// Host owns the WebAssembly runtime shared by every module.
type Host struct {
	// rt and wasi are set by the first compilation (runtime), under rtMu: a router with no
	// module never creates the runtime (WASI and the host module instantiated, about 0.6 MiB;
	// BENCHMARKS.md, "Memory"). Modules and instances read rt without the lock: they exist only
	// after a compilation that set it.
	rtMu    sync.Mutex
	rt      wazero.Runtime
	wasi    map[string]api.FunctionDefinition // exports of the WASI module, to check imports
	cache   wazero.CompilationCache
	log     *slog.Logger
	metrics *Metrics
	closed  atomic.Bool // also ends running guests at their next interrupt check

	mu      sync.Mutex
	modules map[*Module]struct{} // loaded and not closed

	cacheDir string   // "" without an on-disk cache
	compiled sync.Map // hashes of the binaries compiled in this process
}

// New creates a host and its compilation cache; the runtime itself is created by the first
// module compiled (runtime).
func New(ctx context.Context, opts Options) (*Host, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var cache wazero.CompilationCache
	diskDir := "" // the cache directory in use: none when it was refused
	if opts.CacheDir != "" {
		if err := secureCacheDir(opts.CacheDir); err != nil {
			logger.Warn("compiled modules are kept in memory only: the cache directory is not the router's alone",
				"dir", opts.CacheDir, "err", err)
		} else {
			c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
			if err != nil {
				return nil, fmt.Errorf("wasm: compilation cache %q: %w", opts.CacheDir, err)
			}
			cache, diskDir = c, opts.CacheDir
		}
	}
	if cache == nil {
		cache = wazero.NewCompilationCache()
	}
	return &Host{cache: cache, log: logger, metrics: opts.Metrics, modules: map[*Module]struct{}{}, cacheDir: diskDir}, nil
}

// runtime returns the runtime, creating it on the first call: the compiler engine, with WASI
// preview 1, the wasmrouter_v1 host functions and the interrupt check instantiated into it.
func (h *Host) runtime(ctx context.Context) (wazero.Runtime, error) {
	h.rtMu.Lock()
	defer h.rtMu.Unlock()
	if h.rt != nil {
		return h.rt, nil
	}
	if h.closed.Load() { // Close is past its look at rt, or about to take rtMu
		return nil, ErrClosed
	}
	// The memory limit is per module (memlimit.go), so the runtime keeps wazero's maximum, and
	// timeouts come from instrumentation (instrument.go), not WithCloseOnContextDone.
	cfg := wazero.NewRuntimeConfigCompiler().WithCompilationCache(h.cache)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	wasi := rt.Module(WASIModule).ExportedFunctionDefinitions()
	if err := instantiateHostModule(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate %s: %w", ABIModule, err)
	}
	h.rt, h.wasi = rt, wasi
	return rt, nil
}

// Close ends the calls still running (they fail at their next interrupt check), closes every
// module, waiting for those calls while ctx allows, then closes the runtime.
func (h *Host) Close(ctx context.Context) error {
	if !h.closed.CompareAndSwap(false, true) {
		return nil
	}
	h.mu.Lock()
	modules := slices.Collect(maps.Keys(h.modules))
	h.mu.Unlock()
	var err error
	for _, m := range modules {
		if cerr := m.Close(ctx); err == nil {
			err = cerr
		}
	}
	if err != nil {
		// A call is still running: closing the runtime would free code it executes.
		return err
	}
	h.rtMu.Lock()
	if h.rt != nil {
		err = h.rt.Close(ctx)
	}
	h.rtMu.Unlock()
	if cerr := h.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// Check compiles the module at path and checks its exports and imports for roles, without
// instantiating it (for `router validate`).
func (h *Host) Check(ctx context.Context, name, path string, roles []Role) error {
	cm, err := h.compile(ctx, name, path)
	if err != nil {
		return err
	}
	defer cm.Close(ctx)
	_, err = h.checkModule(cm, name, roles, 0)
	return err
}

// Check is Host.Check on a short-lived host with an in-memory cache; the module is named after
// its path in errors.
func Check(ctx context.Context, path string, roles []Role) error {
	h, err := New(ctx, Options{})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	return h.Check(ctx, path, path, roles)
}

// instantiateHostModule registers the wasmrouter_v1 functions. They are stack-based Go functions
// (no reflection) that find the calling instance through the context (instanceFrom).
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(ABIModule)
	for _, f := range hostFuncs {
		fn := f.fn
		name := f.name
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				inst := instanceFrom(ctx)
				if inst == nil {
					// Only a module instantiated outside this package can get here.
					clear(stack)
					return
				}
				if inst.mem == nil { // called from a start function, before newInstance saw the memory
					inst.mem = mod.ExportedMemory(ExportMemory)
				}
				fn(inst, stack)
			}), f.sig.params, f.sig.results).
			WithName(name).
			Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return err
	}
	_, err := rt.NewHostModuleBuilder(interruptModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, _ []uint64) {
			if inst := instanceFrom(ctx); inst != nil {
				inst.interrupt()
			}
		}), nil, nil).
		Export(interruptFunc).
		Instantiate(ctx)
	return err
}
