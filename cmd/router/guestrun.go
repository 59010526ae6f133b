package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

const guestRunHelp = `
Loads FILE.wasm for ROLE (filter, transform or handler), runs it once on an event, and prints
the verdict, what it changed (body, routing key, headers), the events it emitted and its log
lines. The event is one JSON object as in a line of router test --events:

  {"routing_key": "order.created", "headers": {"tenant": "acme"}, "body": {"amount": 500}}

read from --event FILE, or from stdin when --event is absent. A body that is a JSON string is
the body's text; any other JSON value is the body's JSON. Every target name is accepted by
emit. Exit status: 0 when the guest continued or dropped, 1 when it failed (retry, dead
letter, trap, timeout) or could not be loaded.`

// configFlags is a repeatable k=v flag.
type configFlags map[string]string

func (c configFlags) String() string { return fmt.Sprint(map[string]string(c)) }

func (c configFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	c[k] = val
	return nil
}

func cmdGuestRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "FILE.wasm --role R [--config k=v]... [--event FILE.json]"
	fs := newFlags("guest run", synopsis, stdout, stderr)
	describe(fs, "guest run", synopsis, guestRunHelp)
	roleName := fs.String("role", "", "the `ROLE` to call: filter, transform or handler (required)")
	cfg := configFlags{}
	fs.Var(cfg, "config", "a config value of the module, `KEY=VALUE` (repeatable)")
	eventFile := fs.String("event", "", "the event, a JSON object in `FILE` (default: stdin)")
	timeout := fs.Duration("timeout", wasmhost.DefaultTimeout, "the call's time limit (the module block's timeout)")
	maxMemory := fs.Int64("max-memory", wasmhost.DefaultMaxMemory, "the guest's memory limit in bytes (the module block's max_memory)")
	pos, code := parseInterleaved(fs, args, stdout)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one FILE.wasm")
	}
	role, ok := map[string]wasmhost.Role{"filter": wasmhost.RoleFilter, "transform": wasmhost.RoleTransform,
		"handler": wasmhost.RoleHandler}[*roleName]
	if !ok {
		return usageError(fs, stderr, "--role must be filter, transform or handler; got %q", *roleName)
	}
	ev, err := readGuestRunEvent(*eventFile)
	if err != nil {
		fmt.Fprintf(stderr, "router guest run: %v\n", err)
		return exitFail
	}

	lines := &guestLines{}
	host, err := wasmhost.New(ctx, wasmhost.Options{Logger: slog.New(lines), CacheDir: guestRunCache()})
	if err != nil {
		fmt.Fprintf(stderr, "router guest run: %v\n", err)
		return exitFail
	}
	defer host.Close(ctx)
	m, err := host.Load(ctx, wasmhost.ModuleConfig{Name: "guest", Path: pos[0], Config: cfg, Roles: []wasmhost.Role{role},
		PoolSize: 1, Timeout: *timeout, MaxMemory: *maxMemory})
	if err != nil {
		fmt.Fprintf(stderr, "router guest run: %s: %s\n", pos[0], strings.TrimPrefix(err.Error(), `module "guest": `))
		lines.print(stderr)
		return exitFail
	}
	defer m.Close(ctx)

	before := ev.Clone()
	in := &wasmhost.Invocation{Event: ev, Route: "guest-run", KnownTarget: func(string) bool { return true }}
	out := m.Call(ctx, role, in)
	fmt.Fprintf(stdout, "verdict: %s\n", out.Code)
	if out.Reason != "" {
		fmt.Fprintf(stdout, "reason: %s\n", out.Reason)
	}
	if out.Code == wasmhost.Continue || out.Code == wasmhost.Drop {
		printChanges(stdout, before, ev)
	}
	for i, em := range out.Emits {
		headers := ""
		if len(em.Headers) > 0 {
			b, _ := json.Marshal(router.HeadersJSON(em.Headers))
			headers = " headers=" + string(b)
		}
		fmt.Fprintf(stdout, "emitted[%d]: target=%s routing_key=%s%s body=%s\n", i, em.Target, em.RoutingKey, headers, quoteBody(em.Body))
	}
	lines.print(stdout)
	if out.Code == wasmhost.Continue || out.Code == wasmhost.Drop {
		return exitOK
	}
	return exitFail
}

// guestRunCache is where guest run keeps compiled modules, so that trying a guest again after
// a change compiles only what changed: the user's cache directory, or none.
func guestRunCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "wasmrouter", "wasm-cache")
	if os.MkdirAll(dir, 0o755) != nil {
		return ""
	}
	return dir
}

// readGuestRunEvent reads one JSON event from path, or from stdin when path is "".
func readGuestRunEvent(path string) (*event.Event, error) {
	var b []byte
	var err error
	if path == "" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	var in jsonlEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("the event is not a JSON object like {\"routing_key\": \"k\", \"body\": {...}}: %v", err)
	}
	source := in.Source
	if source == "" {
		source = "guest-run"
	}
	ev := offlineEvent(1, source, in.RoutingKey, headersFromJSON(in.Headers), bodyFromJSON(in.Body))
	ev.Exchange = in.Exchange
	if in.MessageID != "" {
		ev.Props.MessageID = in.MessageID
	}
	if ev.Headers == nil {
		ev.Headers = event.Table{}
	}
	return ev, nil
}

// printChanges prints what a call changed in the event.
func printChanges(w io.Writer, before, after *event.Event) {
	if !bytes.Equal(before.Body, after.Body) {
		fmt.Fprintf(w, "body: %s\n", quoteBody(after.Body))
	}
	if before.RoutingKey != after.RoutingKey {
		fmt.Fprintf(w, "routing_key: %q -> %q\n", before.RoutingKey, after.RoutingKey)
	}
	for _, k := range slices.Sorted(maps.Keys(after.Headers)) {
		old, had := before.Headers[k]
		if v := after.Headers[k]; !had || !reflect.DeepEqual(old, v) {
			fmt.Fprintf(w, "header %s: %s\n", k, headerText(router.HeadersJSON(event.Table{k: v})[k]))
		}
	}
}

func quoteBody(b []byte) string {
	if json.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("%q", b)
}

// guestLines is a slog.Handler keeping the guest's log lines and the host's messages about it.
type guestLines struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
}

func (g *guestLines) Enabled(context.Context, slog.Level) bool { return true }

func (g *guestLines) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "guest module compiled" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "log: %s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "module" {
			if strings.Contains(a.Value.String(), "\n") {
				fmt.Fprintf(&b, "\n  %s:\n    %s", a.Key, strings.ReplaceAll(strings.TrimSpace(a.Value.String()), "\n", "\n    "))
			} else {
				fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
			}
		}
		return true
	})
	g.mu.Lock()
	g.lines = append(g.lines, b.String())
	g.mu.Unlock()
	return nil
}

func (g *guestLines) WithAttrs([]slog.Attr) slog.Handler { return g }
func (g *guestLines) WithGroup(string) slog.Handler      { return g }

func (g *guestLines) print(w io.Writer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.lines {
		fmt.Fprintln(w, l)
	}
}
