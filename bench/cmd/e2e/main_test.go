package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmrouter/wasmrouter/bench"
)

func TestMakeSides(t *testing.T) {
	o, err := parseFlags([]string{"-sides", "baseline, router,router-wasm,router-all", "-filter", "f.wasm",
		"-module-config", "min=0", "-dr-url", "amqp://guest:guest@127.0.0.1:5673/"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sides, err := makeSides(o, "amqp://guest:guest@127.0.0.1:5672/", logCluster{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sides {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, ","); got != "baseline,router,router-wasm,router-all" {
		t.Fatalf("sides %s", got)
	}
	wasm := sides[2].(bench.Router).Config
	if !filepath.IsAbs(wasm.Filter) || wasm.Transform != "" || wasm.ModuleConfig["min"] != "0" {
		t.Errorf("router-wasm config: filter %q, transform %q, module config %v", wasm.Filter, wasm.Transform, wasm.ModuleConfig)
	}
	if sides[1].SecondCluster() || !sides[3].SecondCluster() {
		t.Error("only router-all should deliver to the second cluster")
	}
}

func TestMakeSidesGoAndShovel(t *testing.T) {
	o, err := parseFlags([]string{"-sides", "shovel,router-go"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sides, err := makeSides(o, "amqp://guest:guest@127.0.0.1:5672/", logCluster{})
	if err != nil {
		t.Fatal(err)
	}
	if sides[0].Name() != "shovel" || sides[1].Name() != "router-go" {
		t.Fatalf("sides %s, %s", sides[0].Name(), sides[1].Name())
	}
	goSide := sides[1].(bench.Router)
	c := goSide.Config
	if !goSide.WarmCache || !strings.HasSuffix(c.Filter, "threshold.wasm") || !strings.HasSuffix(c.Transform, "redact.wasm") ||
		c.ModuleConfig["min"] != "100" || c.ModuleConfig["fields"] != "id" {
		t.Errorf("router-go: warm %v, config %+v", goSide.WarmCache, c)
	}
}

// The stream sides: one router on the broker's stream; two on the cluster's nodes, whose
// processes count as broker CPU. Without router-stream-2 no cluster is looked for.
func TestMakeSidesStream(t *testing.T) {
	o, err := parseFlags([]string{"-sides", "router-stream,router-stream-2", "-stream-cluster", "amqp://a:1/,amqp://b:2/"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lc := logCluster{urls: strings.Split(o.streamCluster, ","), pids: []int{7, 8}}
	sides, err := makeSides(o, "amqp://guest:guest@127.0.0.1:5672/", lc)
	if err != nil {
		t.Fatal(err)
	}
	one, two := sides[0].(bench.StreamRouters), sides[1].(bench.StreamRouters)
	if one.Name() != "router-stream" || one.Routers != 1 || len(one.LogURLs) != 0 {
		t.Errorf("router-stream: %+v", one)
	}
	if two.Name() != "router-stream-2" || two.Routers != 2 || len(two.LogURLs) != 2 || len(two.LogBrokers) != 2 {
		t.Errorf("router-stream-2: %+v", two)
	}
	o, err = parseFlags([]string{"-sides", "router-stream"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if lc, stop, err := streamCluster(o, io.Discard); err != nil || len(lc.urls) != 0 {
		t.Errorf("without router-stream-2: cluster %+v, error %v", lc, err)
	} else {
		stop()
	}
}

func TestMakeSidesRejects(t *testing.T) {
	for _, list := range []string{"router-wasm", "router-all", "baseline,nginx"} {
		o, err := parseFlags([]string{"-sides", list}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := makeSides(o, "amqp://127.0.0.1/", logCluster{}); err == nil {
			t.Errorf("sides %q: want an error", list)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"-n", "x"}, {"extra"}, {"-sides", "nginx"}} {
		if code := run(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("run %v = %d, want 2", args, code)
		}
	}
}

// The redpanda side needs its binary; given one, it takes the prefetch and max_in_flight.
func TestMakeSidesRedpanda(t *testing.T) {
	o, err := parseFlags([]string{"-sides", "baseline,redpanda"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := makeSides(o, "amqp://guest:guest@127.0.0.1:5672/", logCluster{}); err == nil || !strings.Contains(err.Error(), "-redpanda-bin") {
		t.Fatalf("redpanda without a binary: %v", err)
	}
	o, err = parseFlags([]string{"-sides", "redpanda", "-redpanda-bin", "/opt/rpconnect", "-prefetch", "500", "-redpanda-max-in-flight", "8"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sides, err := makeSides(o, "amqp://guest:guest@127.0.0.1:5672/", logCluster{})
	if err != nil {
		t.Fatal(err)
	}
	rp, ok := sides[0].(bench.RedpandaConnect)
	if !ok || rp.Name() != "redpanda" || rp.Bin != "/opt/rpconnect" || rp.Prefetch != 500 || rp.MaxInFlight != 8 || rp.SecondCluster() {
		t.Errorf("redpanda side %#v", sides[0])
	}
	if def, _ := parseFlags(nil, io.Discard); strings.Contains(def.sides, "redpanda") {
		t.Errorf("redpanda is among the default sides %q", def.sides)
	}
}
