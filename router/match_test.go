package router

import (
	"fmt"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

func matchTopology(t *testing.T, routes ...config.RouteSpec) *Topology {
	t.Helper()
	cfg := &config.Config{
		Sources: []config.SourceSpec{{Name: "in"}, {Name: "other"}},
		Targets: []config.TargetSpec{{Name: "a", Exchange: "xa", Clusters: []string{"c"}}},
		Routes:  routes,
	}
	topo, err := NewTopology(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func matchRoute(name, source string, patterns ...string) config.RouteSpec {
	return config.RouteSpec{Name: name, Source: source, Match: patterns, Targets: []string{"a"}}
}

// An event is matched once, at ingest; the streams of the same generation read that match,
// and after a reload the new generation's routes decide.
func TestRoutesAreMatchedOnceAtIngestAndAgainUnderANewGeneration(t *testing.T) {
	gen1 := matchTopology(t, matchRoute("ra", "in", "k.a.#"), matchRoute("rb", "in", "k.#"), matchRoute("rc", "other", "#"))
	gen1.setGeneration(1)
	m, matched := gen1.matchRoutes("in", "k.a.x")
	if !matched || m != (event.RouteMatch{Generation: 1, Set: 0b011}) {
		t.Fatalf("ingest match %+v, matched %v", m, matched)
	}
	for _, c := range []struct {
		route string
		want  bool
	}{{"ra", true}, {"rb", true}, {"rc", false}} {
		if got := gen1.Route(c.route).keeps("in", "k.a.x", m); got != c.want {
			t.Errorf("generation 1, route %s keeps %v, want %v", c.route, got, c.want)
		}
	}
	// The stream reads the carried match rather than matching again: a match saying no is
	// followed although the route's pattern would take the key.
	if gen1.Route("ra").keeps("in", "k.a.x", event.RouteMatch{Generation: 1}) {
		t.Error("a carried match of the route's own generation was not used")
	}
	// Without a carried match (an event read back from the log's storage) the route matches.
	if !gen1.Route("ra").keeps("in", "k.a.x", event.RouteMatch{}) || gen1.Route("ra").keeps("in", "k.b.x", event.RouteMatch{}) {
		t.Error("without a carried match the route does not match on its own")
	}

	// A reload: ra now takes k.z.# only. The event matched under generation 1 is not sent
	// by generation 2's ra on the strength of the old match.
	gen2 := matchTopology(t, matchRoute("ra", "in", "k.z.#"), matchRoute("rb", "in", "k.#"))
	gen2.setGeneration(2)
	if gen2.Route("ra").keeps("in", "k.a.x", m) {
		t.Error("generation 2 used generation 1's match")
	}
	if !gen2.Route("rb").keeps("in", "k.a.x", m) || !gen2.Route("ra").keeps("in", "k.z.x", m) {
		t.Error("generation 2 does not match on its own")
	}

	if m, matched := gen1.matchRoutes("in", "x.y"); matched || m != (event.RouteMatch{}) {
		t.Errorf("no route: %+v, matched %v", m, matched)
	}
	// A topology not in force (offline runs) carries nothing.
	offline := matchTopology(t, matchRoute("ra", "in", "#"))
	if m, matched := offline.matchRoutes("in", "k"); !matched || m != (event.RouteMatch{}) {
		t.Errorf("offline: %+v, matched %v", m, matched)
	}
}

// A match naming a route beyond the 64 a RouteMatch holds is not carried: the streams match.
func TestRouteMatchBeyondSixtyFourRoutesIsNotCarried(t *testing.T) {
	var routes []config.RouteSpec
	for i := range 65 {
		routes = append(routes, matchRoute(fmt.Sprintf("r%d", i), "in", fmt.Sprintf("k.%d", i), "all"))
	}
	topo := matchTopology(t, routes...)
	topo.setGeneration(1)
	if m, matched := topo.matchRoutes("in", "k.3"); !matched || m != (event.RouteMatch{Generation: 1, Set: 1 << 3}) {
		t.Errorf("k.3: %+v, matched %v", m, matched)
	}
	m, matched := topo.matchRoutes("in", "all")
	if !matched || m != (event.RouteMatch{}) {
		t.Fatalf("all: %+v, matched %v", m, matched)
	}
	for _, r := range topo.Routes {
		if !r.keeps("in", "all", m) {
			t.Fatalf("route %s does not take the event", r.Name())
		}
	}
}
