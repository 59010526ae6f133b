package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// The Go example guests are built once per test binary, from the current sources, into the
// binary's temporary directory: the committed tree holds only the C guests' .wasm files. They
// are also compiled once into a compilation cache that every router of the tests shares
// (wasmDir): under the race detector, compiling them takes most of a minute.
var (
	wasmGuestsOnce  sync.Once
	wasmGuestsDir   string
	wasmSharedCache string
	wasmGuestsErr   error
)

// wasmGoGuests are the Go guests under examples/wasm.
var wasmGoGuests = []string{"threshold", "redact", "splitter"}

// wasmGoGuest returns the path of the built Go example guest name, building them all on first use.
func wasmGoGuest(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Go guests built and a broker (skipped with -short)")
	}
	wasmGuestsOnce.Do(func() {
		start := time.Now()
		prepareWasmGuests()
		t.Logf("built the Go guests and compiled them into the shared cache in %v", time.Since(start).Round(time.Millisecond))
	})
	if wasmGuestsErr != nil {
		t.Fatalf("building the Go example guests: %v", wasmGuestsErr)
	}
	return filepath.Join(wasmGuestsDir, name+".wasm")
}

func prepareWasmGuests() {
	if wasmGuestsDir, wasmGuestsErr = buildWasmGoGuests(filepath.Join(binDir, "guests")); wasmGuestsErr != nil {
		return
	}
	wasmSharedCache = filepath.Join(binDir, "wasm-cache")
	wasmGuestsErr = warmWasmCache(wasmSharedCache, wasmGuestsDir)
}

// warmWasmCache compiles the Go guests into dir, concurrently.
func warmWasmCache(dir, guests string) error {
	ctx := context.Background()
	host, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
	if err != nil {
		return err
	}
	defer host.Close(ctx)
	configs := map[string]map[string]string{
		"threshold": {"min": "0"}, "redact": {"fields": "x"}, "splitter": {"target": "t"},
	}
	errs := make(chan error, len(wasmGoGuests))
	for _, g := range wasmGoGuests {
		go func() {
			m, err := host.Load(ctx, wasmhost.ModuleConfig{
				Name: g, Path: filepath.Join(guests, g+".wasm"), Config: configs[g], PoolSize: 1,
			})
			if err == nil {
				err = m.Close(ctx)
			}
			errs <- err
		}()
	}
	for range wasmGoGuests {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}

// wasmDir is a test directory for a config whose store is the default data/router.db: its
// data/wasm-cache is the shared compilation cache.
func wasmDir(t testing.TB) string {
	t.Helper()
	wasmGoGuest(t, wasmGoGuests[0])
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(wasmSharedCache, filepath.Join(dir, "data", "wasm-cache")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wasmGoTool is the go command of `go env GOROOT`, and the module root of `go env GOMOD`.
func wasmGoTool() (goBin, root string, err error) {
	out, err := exec.Command("go", "env", "GOROOT", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOROOT GOMOD: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[1] == "" || lines[1] == os.DevNull {
		return "", "", fmt.Errorf("go env GOROOT GOMOD: unexpected output %q", out)
	}
	return filepath.Join(lines[0], "bin", "go"), filepath.Dir(lines[1]), nil
}

func buildWasmGoGuests(dir string) (string, error) {
	goBin, root, err := wasmGoTool()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, g := range wasmGoGuests {
		cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath",
			"-o", filepath.Join(dir, g+".wasm"), "./examples/wasm/"+g)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %w\n%s", g, err, b)
		}
	}
	return dir, nil
}

// wasmRepoFile is the absolute path of a committed file, e.g. a C guest.
func wasmRepoFile(t testing.TB, rel string) string {
	t.Helper()
	_, root, err := wasmGoTool()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, filepath.FromSlash(rel))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("committed file missing: %v", err)
	}
	return path
}

// wasmModule is a module block; extra holds more attributes, one per line.
func wasmModule(name, path string, config map[string]string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s {\n  path = %s\n", hclString(name), hclString(path))
	if len(config) > 0 {
		keys := make([]string, 0, len(config))
		for k := range config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("  config = {\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "    %s = %s\n", hclString(k), hclString(config[k]))
		}
		b.WriteString("  }\n")
	}
	for _, e := range extra {
		b.WriteString("  " + e + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// deliveriesByID indexes deliveries by message id, failing the test on an id seen twice.
func deliveriesByID(t *testing.T, what string, ds []amqp.Delivery) map[string]amqp.Delivery {
	t.Helper()
	out := make(map[string]amqp.Delivery, len(ds))
	for _, d := range ds {
		if _, dup := out[d.MessageId]; dup {
			t.Errorf("%s: message %s arrived twice", what, d.MessageId)
		}
		out[d.MessageId] = d
	}
	return out
}

// headerIs fails the test unless d carries header name with exactly want (value and AMQP type).
func headerIs(t *testing.T, what string, d amqp.Delivery, name string, want any) {
	t.Helper()
	got, ok := d.Headers[name]
	if !ok {
		t.Errorf("%s (%s): header %s absent, want %#v", what, d.MessageId, name, want)
		return
	}
	if got != want {
		t.Errorf("%s (%s): header %s = %#v (%T), want %#v (%T)", what, d.MessageId, name, got, got, want, want)
	}
}

// sameJSON fails the test unless got and want are equal JSON documents.
func sameJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: body %q is not JSON: %v", what, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: expected body %q is not JSON: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s: body %s, want %s", what, got, want)
	}
}

// readyWatcher polls /readyz in the background and remembers every answer other than 200.
type readyWatcher struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	bad  []string
	n    int
}

func watchReady(t testing.TB, admin string) *readyWatcher {
	w := &readyWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			code, body := readyz(admin)
			w.mu.Lock()
			w.n++
			if code != 200 {
				w.bad = append(w.bad, fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body))))
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.end() })
	return w
}

// end stops polling and returns the number of polls and the non-200 answers; idempotent.
func (w *readyWatcher) end() (int, []string) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.bad
}
