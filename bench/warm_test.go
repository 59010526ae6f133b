package bench

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wasmrouter/wasmrouter/wasmhost"
)

func TestCacheDirOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    RouterConfig
		want string
	}{
		{"absolute store", RouterConfig{StorePath: "/w/run-1/data/router.db"}, "/w/run-1/data/wasm-cache"},
		{"relative store", RouterConfig{StorePath: "bin/work/run-1/data/router.db"}, "bin/work/run-1/bin/work/run-1/data/wasm-cache"},
		{"stream", RouterConfig{StorePath: "/elsewhere/router.db", Stream: &StreamStore{Stream: "s"}}, "bin/work/run-1/data/wasm-cache"},
	} {
		dir := "bin/work/run-1"
		if tc.name == "absolute store" {
			dir = "/w/run-1"
		}
		if got := cacheDirOf(dir, tc.c); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// recorder keeps the log records of a host.
type recorder struct {
	mu   sync.Mutex
	from map[string]string // module -> "compiled" or "cache"
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var module, from string
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "module":
			module = a.Value.String()
		case "from":
			from = a.Value.String()
		}
		return true
	})
	if from != "" {
		r.mu.Lock()
		r.from[module] = from
		r.mu.Unlock()
	}
	return nil
}

// TestWarmCacheIsFoundByTheRouter warms a run's cache as the router-go side does and loads the
// modules the way the router does, from the directory the router would use: both come from
// the cache, none is compiled.
func TestWarmCacheIsFoundByTheRouter(t *testing.T) {
	filter, _ := filepath.Abs("../examples/wasm/threshold/threshold.wasm")
	transform, _ := filepath.Abs("../examples/wasm/redact/redact.wasm")
	for _, p := range []string{filter, transform} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%v (make wasm builds the example guests)", err)
		}
	}
	run := t.TempDir()
	c := RouterConfig{StorePath: filepath.Join(run, "data", "router.db"), Filter: filter, Transform: transform,
		ModuleConfig: map[string]string{"min": "100", "fields": "id"}}
	r := Router{Bin: buildBinary(t, "../cmd/router"), Config: c}
	dir := cacheDirOf(run, c)
	if err := r.warmCache(run, dir); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{from: map[string]string{}}
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir, Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	for name, path := range map[string]string{"filter": filter, "transform": transform} {
		if _, err := h.Load(ctx, wasmhost.ModuleConfig{Name: name, Path: path, PoolSize: 1, Config: c.ModuleConfig}); err != nil {
			t.Fatal(err)
		}
	}
	if rec.from["filter"] != "cache" || rec.from["transform"] != "cache" {
		t.Errorf("modules came from %v, want the cache", rec.from)
	}
}
