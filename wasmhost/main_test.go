package wasmhost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
)

// Go guests are built here, not committed: package path (relative to the module root) -> file.
var goGuests = map[string]string{
	"conformance": "wasmhost/testdata/go/conformance",
	"jsonstd":     "wasmhost/testdata/go/jsonstd",
	"noop":        "wasmhost/testdata/go/noop",
	"spin":        "wasmhost/testdata/go/spin",
	"threshold":   "examples/wasm/threshold",
	"redact":      "examples/wasm/redact",
	"splitter":    "examples/wasm/splitter",
}

var (
	guestDir string // built Go guests
	cacheDir string // compilation cache shared by the tests' hosts, so each module compiles once
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "wasmhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	guestDir, cacheDir = filepath.Join(tmp, "guests"), filepath.Join(tmp, "cache")
	if err := buildGoGuests(guestDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildGoGuests builds every Go guest as a wasip1 reactor; the Go build cache makes reruns fast.
func buildGoGuests(dir string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	env := append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	for name, pkg := range goGuests {
		out := filepath.Join(dir, name+".wasm")
		cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
		cmd.Dir = ".."
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// goGuest is the path of a built Go guest; cGuest of a prebuilt C one.
func goGuest(name string) string { return filepath.Join(guestDir, name+".wasm") }
func cGuest(name string) string  { return filepath.Join("testdata", "c", name+".wasm") }

// asGuest is the path of a prebuilt AssemblyScript guest (make -C wasmhost/testdata/as).
func asGuest(name string) string { return filepath.Join("testdata", "as", name+".wasm") }

// testHost is a Host with its own metrics registry and a log recorder.
type testHost struct {
	*Host
	reg  *prometheus.Registry
	met  *Metrics
	logs *logRecorder
}

func newHost(t testing.TB) *testHost {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	met := NewMetrics(reg)
	logs := &logRecorder{}
	h, err := New(ctx, Options{CacheDir: cacheDir, Logger: slog.New(logs), Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(ctx) })
	return &testHost{Host: h, reg: reg, met: met, logs: logs}
}

func (h *testHost) load(t testing.TB, cfg ModuleConfig) *Module {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = strings.TrimSuffix(filepath.Base(cfg.Path), ".wasm")
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second // generous: -race and a shared machine
	}
	m, err := h.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// logRecorder is a slog.Handler keeping every record for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
	attrs   []slog.Attr
	parent  *logRecorder
}

type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func (r *logRecorder) root() *logRecorder {
	if r.parent != nil {
		return r.parent.root()
	}
	return r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	for _, a := range r.attrs {
		attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	root.records = append(root.records, logRecord{Level: rec.Level, Msg: rec.Message, Attrs: attrs})
	return nil
}

func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(slices.Clone(r.attrs), attrs...), parent: r}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// find returns the records with the message.
func (r *logRecorder) find(msg string) []logRecord {
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	var out []logRecord
	for _, rec := range root.records {
		if rec.Msg == msg {
			out = append(out, rec)
		}
	}
	return out
}

// testEvent is an event with every property set.
func testEvent() *event.Event {
	return &event.Event{
		Seq: 42, Source: "in", Exchange: "events", RoutingKey: "order.created",
		Props: event.Properties{
			ContentType: "application/json", MessageID: "m-1", CorrelationID: "c-1",
			Type: "order", AppID: "shop", Timestamp: time.UnixMilli(1700000000123),
		},
		Headers: event.Table{},
		Body:    []byte(`{"amount":5}`),
	}
}

// op is an invocation of a test guest's op with extra string headers.
func op(name string, headers ...string) *Invocation {
	ev := testEvent()
	ev.Headers["op"] = name
	for i := 0; i+1 < len(headers); i += 2 {
		ev.Headers[headers[i]] = headers[i+1]
	}
	return &Invocation{Event: ev, Route: "orders", KnownTarget: func(n string) bool { return n == "out" }}
}

// all returns every record.
func (r *logRecorder) all() []logRecord {
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	return slices.Clone(root.records)
}
