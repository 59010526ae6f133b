package wasmhost

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadErrors(t *testing.T) {
	h := newHost(t)
	filter := []Role{RoleFilter}
	for _, c := range []struct {
		name    string
		cfg     ModuleConfig
		kind    error
		message string
	}{
		{"missing entry point", ModuleConfig{Path: cGuest("bad_noentry"), Roles: filter}, ErrABI,
			`module "m": missing export "wr_filter" (needed for the filter role); the module exports only wr_transform: ` +
				`list it under a route's transforms, or export wr_filter`},
		{"no entry point at all", ModuleConfig{Path: cGuest("bad_noentry"), Roles: []Role{RoleHandler, RoleTransform}}, ErrABI,
			`module "m": missing export "wr_handle" (needed for the handler role); the module exports only wr_transform`},
		{"entry point signature", ModuleConfig{Path: cGuest("bad_badsig"), Roles: filter}, ErrABI,
			`module "m": export "wr_filter" has signature (i32) -> i32, want (i32, i32) -> i32 (Go: func(ptr, size uint32) int32; `},
		{"wr_buffer signature", ModuleConfig{Path: cGuest("bad_badbuffersig"), Roles: filter}, ErrABI,
			`module "m": export "wr_buffer" has signature (i64) -> i64, want (i32) -> i32`},
		{"missing marker", ModuleConfig{Path: cGuest("bad_nomarker"), Roles: filter}, ErrABI,
			`module "m": missing export "wr_abi_v1": not built with a wasmrouter SDK (Go: import github.com/wasmrouter/wasmrouter/guest/wr; ` +
				`C: #define WASMROUTER_IMPLEMENTATION before #include "wasmrouter.h" in one file`},
		{"import signature", ModuleConfig{Path: cGuest("bad_badimport"), Roles: filter}, ErrABI,
			`module "m": import wasmrouter_v1.meta_get has signature (i32, i32, i32) -> i32, want (i32, i32, i32, i32) -> i32`},
		{"unknown host function", ModuleConfig{Path: cGuest("bad_unknownimport"), Roles: filter}, ErrABI,
			`module "m": imports unknown function wasmrouter_v1.nope`},
		{"foreign import", ModuleConfig{Path: cGuest("bad_envimport"), Roles: filter}, ErrABI,
			`module "m": imports env.secret; only wasmrouter_v1 and wasi_snapshot_preview1 may be imported`},
		{"command module", ModuleConfig{Path: cGuest("command"), Roles: filter}, ErrABI,
			`module "m": exports "_start" but not "_initialize": build a reactor`},
		{"initial memory over the limit", ModuleConfig{Path: cGuest("bad_bigmem"), Roles: filter, MaxMemory: 4 << 20}, ErrABI,
			`module "m": initial memory of`},
		{"failing _initialize", ModuleConfig{Path: cGuest("bad_initfail"), Roles: filter}, ErrInstantiate,
			`module "m": instantiate: wasm error: unreachable (guest error: init refused)`},
		{"not WebAssembly", ModuleConfig{Path: "testdata/c/Makefile"}, ErrCompile,
			`module "m": compile testdata/c/Makefile: `},
		{"missing file", ModuleConfig{Path: "testdata/none.wasm"}, fs.ErrNotExist, `module "m": no module file (build the guest first, or correct path): open testdata/none.wasm`},
		{`module "m": negative timeout`, ModuleConfig{Path: cGuest("noop"), Timeout: -time.Second}, ErrConfig, `module "m": negative timeout`},
		{"tiny memory", ModuleConfig{Path: cGuest("noop"), MaxMemory: 100}, ErrConfig, `module "m": max_memory 100 is less than one 64 KiB page`},
		{"huge memory", ModuleConfig{Path: cGuest("noop"), MaxMemory: 8 << 30}, ErrConfig, `module "m": max_memory 8589934592 outside`},
		{"negative pool", ModuleConfig{Path: cGuest("noop"), PoolSize: -1}, ErrConfig, `module "m": negative pool size`},
		{"no path", ModuleConfig{}, ErrConfig, `module "m": empty path`},
		{"unknown role", ModuleConfig{Path: cGuest("noop"), Roles: []Role{7}}, ErrConfig, `module "m": unknown role 7`},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Name = "m"
			m, err := h.Load(context.Background(), c.cfg)
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("loaded")
			}
			if !errors.Is(err, c.kind) || !strings.HasPrefix(err.Error(), c.message) {
				t.Errorf("error %q (%T), want %v starting with %q", err, err, c.kind, c.message)
			}
		})
	}
}

func TestLoadAcceptsWhatRolesNeed(t *testing.T) {
	h := newHost(t)
	// bad_noentry lacks wr_filter but has wr_transform.
	m := h.load(t, ModuleConfig{Path: cGuest("bad_noentry"), Roles: []Role{RoleTransform}})
	if out := m.Call(context.Background(), RoleFilter, op("x")); out.Code != Retry ||
		out.Reason != `no export "wr_filter" for the filter role` {
		t.Errorf("filter call on a transform-only module: %v %q", out.Code, out.Reason)
	}
	if out := m.Call(context.Background(), RoleTransform, op("x")); out.Code != Continue {
		t.Errorf("transform: %v %q", out.Code, out.Reason)
	}
	// Initial memory within the limit.
	h.load(t, ModuleConfig{Path: cGuest("bad_bigmem"), Roles: []Role{RoleFilter}, MaxMemory: 16 << 20})
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	if err := Check(ctx, cGuest("conformance"), []Role{RoleFilter, RoleTransform, RoleHandler}); err != nil {
		t.Errorf("conformance: %v", err)
	}
	err := Check(ctx, cGuest("noop"), []Role{RoleHandler})
	want := `module "` + cGuest("noop") + `": missing export "wr_handle" (needed for the handler role); ` +
		`the module exports only wr_filter: list it under a route's filters, or export wr_handle`
	if !errors.Is(err, ErrABI) || err.Error() != want {
		t.Errorf("noop as a handler: %v, want %s", err, want)
	}
	// Check does not run the guest: threshold without its required config passes.
	h := newHost(t)
	if err := h.Check(ctx, "t", goGuest("threshold"), []Role{RoleFilter}); err != nil {
		t.Errorf("Host.Check: %v", err)
	}
	if err := h.Check(ctx, "t", goGuest("threshold"), []Role{RoleTransform}); !errors.Is(err, ErrABI) {
		t.Errorf("Host.Check of a filter as a transform: %v", err)
	}
}

func TestHostClose(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("noop")})
	spin := h.load(t, ModuleConfig{Path: cGuest("hostile"), Timeout: time.Minute})
	running := make(chan Outcome)
	go func() { running <- spin.Call(context.Background(), RoleFilter, op("loop")) }()
	waitFor(t, "the loop to start", func() bool { return len(spin.pool) == 0 })
	// Close stops the running guest (long before its timeout) and waits for it.
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := <-running; out.Code != Retry || out.Reason != "host closed during the call" {
		t.Errorf("running call: %v %q", out.Code, out.Reason)
	}
	if out := m.Call(context.Background(), RoleFilter, op("x")); out.Code != Retry {
		t.Errorf("call after host close: %v %q", out.Code, out.Reason)
	}
	if _, err := h.Load(context.Background(), ModuleConfig{Name: "x", Path: cGuest("noop")}); !errors.Is(err, ErrClosed) {
		t.Errorf("load after close: %v", err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Errorf("module close after host close: %v", err)
	}
}

// TestCompileLogLine: each load logs one line saying whether the module was compiled or came
// from the cache, in this process or from an earlier one's cache directory.
func TestCompileLogLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	from := func() []string {
		logs := &logRecorder{}
		h, err := New(ctx, Options{CacheDir: dir, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(ctx)
		for range 2 {
			m, err := h.Load(ctx, ModuleConfig{Name: "noop", Path: cGuest("noop"), PoolSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			_ = m.Close(ctx)
		}
		var got []string
		for _, r := range logs.find("guest module compiled") {
			if r.Attrs["module"] != "noop" || r.Attrs["took"] == "" {
				t.Errorf("log record %+v lacks the module or the time", r)
			}
			got = append(got, r.Attrs["from"])
		}
		return got
	}
	if got := from(); !slices.Equal(got, []string{"compiled", "cache"}) {
		t.Errorf("first process: %v, want compiled then cache", got)
	}
	if got := from(); !slices.Equal(got, []string{"cache", "cache"}) {
		t.Errorf("second process on the same cache directory: %v, want cache twice", got)
	}
}
