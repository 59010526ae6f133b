package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

func cmdTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", "[-c FILE] [--events FILE.jsonl]", stdout, stderr)
	path := configFlag(fs)
	events := fs.String("events", "", "run the events of this JSON-lines `FILE` instead of the config's test blocks")
	if code := parseFlags(fs, args, stdout); code >= 0 {
		return code
	}
	cfg := app.LoadConfig(*path, stderr)
	if cfg == nil {
		return exitFail
	}
	topo, cleanup, code := offlineTopology(ctx, cfg, stderr)
	if topo == nil {
		return code
	}
	defer cleanup()
	if *events != "" {
		return runEventsFile(ctx, topo, *events, stdout, stderr)
	}
	return runTestBlocks(ctx, topo, stdout)
}

// offlineTopology loads the guests and compiles the routes, with no broker and no store.
func offlineTopology(ctx context.Context, cfg *config.Config, stderr io.Writer) (*router.Topology, func(), int) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := app.NewHost(ctx, cfg, log, metrics.New(prometheus.NewRegistry()))
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

func runTestBlocks(ctx context.Context, topo *router.Topology, stdout io.Writer) int {
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
		problems := checkExpect(tc.Expect, topo.Decide(ctx, ev))
		if len(problems) == 0 {
			fmt.Fprintf(stdout, "PASS %s\n", tc.Name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL %s (%s:%d)\n", tc.Name, tc.Range.Filename, tc.Range.Start.Line)
		for _, p := range problems {
			fmt.Fprintf(stdout, "    %s\n", p)
		}
	}
	fmt.Fprintf(stdout, "tests: %d passed, %d failed\n", len(tests)-failed, failed)
	if failed > 0 {
		return exitFail
	}
	return exitOK
}

// checkExpect compares a test block's expectations with the route's outcome, as "want/got" lines.
func checkExpect(want config.TestExpect, outs []router.RouteOutcome) []string {
	var got *router.RouteOutcome
	for i := range outs {
		if outs[i].Route == want.Route {
			got = &outs[i]
		}
	}
	var problems []string
	gotTargets := []string{}
	if got != nil {
		gotTargets = got.Targets
	}
	if want.Targets != nil {
		w := slices.Clone(want.Targets)
		sort.Strings(w)
		if !slices.Equal(w, gotTargets) {
			problems = append(problems, fmt.Sprintf("targets: want %q, got %q%s", w, gotTargets, verdictNote(got)))
		}
	}
	if want.RoutingKey == nil && want.Body == nil && want.Headers == nil {
		return problems
	}
	var out *router.Output
	if got != nil {
		for i := range got.Outputs {
			if !got.Outputs[i].Emitted {
				out = &got.Outputs[i]
				break
			}
		}
	}
	if out == nil {
		return append(problems, "no message reaches the route's targets"+verdictNote(got))
	}
	if want.RoutingKey != nil && *want.RoutingKey != out.RoutingKey {
		problems = append(problems, fmt.Sprintf("routing_key: want %q, got %q", *want.RoutingKey, out.RoutingKey))
	}
	if want.Body != nil && *want.Body != out.Body {
		problems = append(problems, fmt.Sprintf("body: want %q, got %q", *want.Body, out.Body))
	}
	for k, v := range want.Headers {
		g, ok := out.Headers[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("header %s: want %q, absent", k, v))
		} else if !reflect.DeepEqual(fmt.Sprint(g), v) {
			problems = append(problems, fmt.Sprintf("header %s: want %q, got %q", k, v, fmt.Sprint(g)))
		}
	}
	return problems
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
