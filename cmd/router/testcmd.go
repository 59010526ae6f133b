package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

func cmdTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", "[-c FILE] [--events FILE.jsonl] [--log-level LEVEL]", stdout, stderr)
	path := configFlag(fs)
	events := fs.String("events", "", "run the events of this JSON-lines `FILE` instead of the config's test blocks")
	logLevel := fs.String("log-level", "info", "lowest `LEVEL` of the log lines shown (debug, info, warn, error); a failing test shows its guests' lines")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError(fs, stderr, "--log-level must be debug, info, warn or error; got %q", *logLevel)
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	logs := &testLog{out: stderr}
	log := slog.New(quietLoads{slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}), level})
	topo, cleanup, code := offlineTopology(ctx, cfg, log, stderr)
	if topo == nil {
		return code
	}
	defer cleanup()
	if *events != "" {
		return runEventsFile(ctx, topo, *events, stdout, stderr)
	}
	return runTestBlocks(ctx, topo, logs, stdout)
}

// quietLoads leaves out the host's line per loaded module unless --log-level is debug: the
// output of `router test` is its decisions and the guests' lines.
type quietLoads struct {
	slog.Handler
	level slog.Level
}

func (q quietLoads) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "guest module compiled" && q.level > slog.LevelDebug {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietLoads) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietLoads{q.Handler.WithAttrs(attrs), q.level}
}

func (q quietLoads) WithGroup(name string) slog.Handler {
	return quietLoads{q.Handler.WithGroup(name), q.level}
}

// testLog is the log writer of `router test`: lines go to stderr, except while a test block
// runs, when they are kept and shown under the test only if it fails.
type testLog struct {
	mu      sync.Mutex
	out     io.Writer
	capture *bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.capture != nil {
		return l.capture.Write(p)
	}
	return l.out.Write(p)
}

// collect starts keeping lines; the returned function stops and gives them back.
func (l *testLog) collect() func() string {
	l.mu.Lock()
	l.capture = &bytes.Buffer{}
	l.mu.Unlock()
	return func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		s := l.capture.String()
		l.capture = nil
		return s
	}
}

// offlineTopology loads the guests and compiles the routes, with no broker and no store.
func offlineTopology(ctx context.Context, cfg *config.Config, log *slog.Logger, stderr io.Writer) (*router.Topology, func(), int) {
	host, err := app.NewHost(ctx, cfg, log, wasmhost.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		fmt.Fprintf(stderr, "router: starting the WASM runtime: %v\n", err)
		return nil, nil, exitFail
	}
	modules, diags := app.LoadModules(ctx, host, cfg, 1)
	cleanup := func() { app.CloseModules(ctx, modules); _ = host.Close(ctx) }
	if diags.HasErrors() {
		config.FormatDiagnostics(stderr, diags)
		cleanup()
		return nil, nil, exitFail
	}
	topo, err := router.NewTopology(cfg, modules)
	if err != nil {
		fmt.Fprintf(stderr, "router: %v\n", err)
		cleanup()
		return nil, nil, exitFail
	}
	return topo, cleanup, exitOK
}

// offlineEvent completes an event as ingest would: an ingest time and a message id.
func offlineEvent(seq uint64, source, key string, headers event.Table, body []byte) *event.Event {
	ev := &event.Event{Seq: seq, Source: source, RoutingKey: key, Headers: headers, Body: body, IngestTime: time.Now().UTC()}
	ev.Props.DeliveryMode = 2
	ev.Props.MessageID = router.AssignedMessageID(store.FingerprintOf(ev), ev.IngestTime)
	return ev
}

// jsonlEvent is one line of an --events file. Body is a string, or any JSON value (encoded).
type jsonlEvent struct {
	Source     string          `json:"source"`
	Exchange   string          `json:"exchange"`
	RoutingKey string          `json:"routing_key"`
	MessageID  string          `json:"message_id"`
	Headers    map[string]any  `json:"headers"`
	Body       json.RawMessage `json:"body"`
}

func runEventsFile(ctx context.Context, topo *router.Topology, path string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "router: %v\n", err)
		return exitFail
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	enc := json.NewEncoder(stdout)
	line, bad := 0, 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var in jsonlEvent
		dec := json.NewDecoder(bytesReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			fmt.Fprintf(stderr, "%s:%d: error: %v\n", path, line, err)
			bad++
			continue
		}
		source := in.Source
		if source == "" && len(topo.Config.Sources) == 1 {
			source = topo.Config.Sources[0].Name
		}
		ev := offlineEvent(uint64(line), source, in.RoutingKey, headersFromJSON(in.Headers), bodyFromJSON(in.Body))
		ev.Exchange = in.Exchange
		if in.MessageID != "" {
			ev.Props.MessageID = in.MessageID
		}
		outs := topo.Decide(ctx, ev)
		if outs == nil {
			outs = []router.RouteOutcome{}
		}
		_ = enc.Encode(map[string]any{
			"line": line, "source": source, "routing_key": in.RoutingKey, "message_id": ev.Props.MessageID, "routes": outs,
		})
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", path, err)
		return exitFail
	}
	if bad > 0 {
		return exitFail
	}
	return exitOK
}

func runTestBlocks(ctx context.Context, topo *router.Topology, logs *testLog, stdout io.Writer) int {
	tests := topo.Config.Tests
	if len(tests) == 0 {
		fmt.Fprintln(stdout, "no test blocks in the configuration")
		return exitOK
	}
	failed := 0
	for i, tc := range tests {
		source := tc.Input.Source
		if source == "" && len(topo.Config.Sources) == 1 {
			source = topo.Config.Sources[0].Name
		}
		headers := event.Table{}
		for k, v := range tc.Input.Headers {
			headers[k] = v
		}
		ev := offlineEvent(uint64(i+1), source, tc.Input.RoutingKey, headers, []byte(tc.Input.Body))
		stop := logs.collect()
		outs := topo.Decide(ctx, ev)
		lines := stop()
		problems := checkExpect(tc.Expect, outs)
		if len(problems) == 0 {
			fmt.Fprintf(stdout, "PASS %s\n", tc.Name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL %s (%s:%d)\n", tc.Name, tc.Range.Filename, tc.Range.Start.Line)
		for _, p := range problems {
			fmt.Fprintf(stdout, "    %s\n", p)
		}
		if lines = strings.TrimRight(lines, "\n"); lines != "" {
			fmt.Fprintln(stdout, "    log:")
			for _, l := range strings.Split(lines, "\n") {
				fmt.Fprintf(stdout, "      %s\n", l)
			}
		}
	}
	fmt.Fprintf(stdout, "tests: %d passed, %d failed\n", len(tests)-failed, failed)
	if failed > 0 {
		return exitFail
	}
	return exitOK
}

// checkExpect compares a test block's expectations with the outcomes, as "want/got" lines. A
// route that dead-letters the event fails every test of it that does not expect exactly that:
// a crashing guest must never pass for one that drops.
func checkExpect(want config.TestExpect, outs []router.RouteOutcome) []string {
	got := pickOutcome(want.Route, outs)
	var problems []string
	gotVerdict := "unmatched"
	gotTargets := []string{}
	if got != nil {
		gotVerdict, gotTargets = got.Verdict, got.Targets
	}
	switch {
	case want.Verdict != "" && want.Verdict != gotVerdict:
		problems = append(problems, fmt.Sprintf("verdict: want %s, got %s%s", want.Verdict, gotVerdict, verdictNote(got)))
	case want.Verdict == "" && gotVerdict == "dead_letter":
		problems = append(problems, "verdict: got dead_letter"+verdictNote(got)+
			`; a test of a failing event passes only with verdict = "dead_letter"`)
	}
	if want.Reason != nil && gotVerdict == "dead_letter" && !strings.Contains(got.Reason, *want.Reason) {
		problems = append(problems, fmt.Sprintf("reason: want it to contain %q, got %q", *want.Reason, got.Reason))
	}
	if want.Targets != nil {
		w := slices.Clone(want.Targets)
		sort.Strings(w)
		if !slices.Equal(w, gotTargets) {
			problems = append(problems, fmt.Sprintf("targets: want %q, got %q%s", w, gotTargets, verdictNote(got)))
		}
	}
	var own, emitted []router.Output
	if got != nil {
		for _, o := range got.Outputs {
			if o.Emitted {
				emitted = append(emitted, o)
			} else {
				own = append(own, o)
			}
		}
	}
	if want.RoutingKey != nil || want.Body != nil || want.Headers != nil {
		if len(own) == 0 {
			note := verdictNote(got)
			if len(emitted) > 0 {
				note += fmt.Sprintf(" (the handler emitted %d events: check them with emitted)", len(emitted))
			}
			problems = append(problems, "no message reaches the route's targets"+note)
		} else {
			problems = append(problems, compareMessage("", want.RoutingKey, want.Body, want.Headers, own[0])...)
		}
	}
	if want.Emitted != nil {
		problems = append(problems, compareEmitted(want.Emitted, emitted)...)
	}
	return problems
}

// pickOutcome finds the named route's outcome; without a name, the only route that matched.
func pickOutcome(route string, outs []router.RouteOutcome) *router.RouteOutcome {
	if route == "" {
		if len(outs) == 1 {
			return &outs[0]
		}
		return nil
	}
	for i := range outs {
		if outs[i].Route == route {
			return &outs[i]
		}
	}
	return nil
}

func compareEmitted(want []config.TestEmit, got []router.Output) []string {
	var problems []string
	if len(want) != len(got) {
		problems = append(problems, fmt.Sprintf("emitted: want %d events, got %d", len(want), len(got)))
	}
	for i := range min(len(want), len(got)) {
		w, g := want[i], got[i]
		prefix := fmt.Sprintf("emitted[%d] ", i)
		if w.Target != g.Target {
			problems = append(problems, fmt.Sprintf("%starget: want %q, got %q", prefix, w.Target, g.Target))
		}
		problems = append(problems, compareMessage(prefix, w.RoutingKey, w.Body, w.Headers, g)...)
	}
	return problems
}

// compareMessage checks one message's routing key, body (as JSON when both sides are JSON) and
// headers (only those listed).
func compareMessage(prefix string, key, body *string, headers map[string]string, got router.Output) []string {
	var problems []string
	if key != nil && *key != got.RoutingKey {
		problems = append(problems, fmt.Sprintf("%srouting_key: want %q, got %q", prefix, *key, got.RoutingKey))
	}
	if body != nil && !sameBody(*body, got.Body) {
		problems = append(problems, fmt.Sprintf("%sbody: want %q, got %q", prefix, *body, got.Body))
	}
	names := slices.Sorted(maps.Keys(headers))
	for _, k := range names {
		v := headers[k]
		g, ok := got.Headers[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("%sheader %s: want %q, absent", prefix, k, v))
		} else if text := headerText(g); text != v {
			problems = append(problems, fmt.Sprintf("%sheader %s: want %q, got %q", prefix, k, v, text))
		}
	}
	return problems
}

// sameBody compares two bodies as JSON values when both parse as JSON (key order, spacing and
// number spelling do not matter), and byte for byte otherwise.
func sameBody(want, got string) bool {
	if want == got {
		return true
	}
	w, okW := decodeJSON(want)
	g, okG := decodeJSON(got)
	return okW && okG && reflect.DeepEqual(w, g)
}

func decodeJSON(s string) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return normalizeNumbers(v), true
}

// normalizeNumbers turns JSON numbers into a canonical text, so that 1, 1.0 and 1e0 compare equal.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if r, ok := new(big.Rat).SetString(x.String()); ok {
			return r.RatString()
		}
		return x.String()
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	}
	return v
}

// headerText is a header's value as test blocks write it: strings as they are, other values as
// JSON (numbers and booleans plainly).
func headerText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func verdictNote(o *router.RouteOutcome) string {
	switch {
	case o == nil:
		return " (the route did not match)"
	case o.Verdict == "drop":
		return " (dropped by module " + o.Module + ")"
	case o.Verdict == "dead_letter":
		return " (dead-lettered by module " + o.Module + ": " + o.Reason + ")"
	}
	return ""
}
