package router

import (
	"errors"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/store"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"15m", now.Add(-15 * time.Minute), false},
		{"2026-01-01T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"-5m", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	} {
		got, err := ParseWhen(tc.in, now)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("ParseWhen(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestResolveSelection(t *testing.T) {
	topo := testRoute(t, "a").topoForTest(t)
	sel, err := ReplayRequest{From: 0, To: 0}.Resolve(topo, 5, 90, time.Now())
	if err != nil || sel.From != 5 || sel.To != 90 || len(sel.Routes) != 1 {
		t.Fatalf("defaults: %+v %v", sel, err)
	}
	sel, err = ReplayRequest{From: 10, To: 500}.Resolve(topo, 5, 90, time.Now())
	if err != nil || sel.From != 10 || sel.To != 90 {
		t.Fatalf("clamping: %+v %v", sel, err)
	}
	for _, req := range []ReplayRequest{{Routes: []string{"nope"}}, {Target: "nope"}, {Since: "never"}, {Rate: -1}} {
		if _, err := req.Resolve(topo, 1, 2, time.Now()); !errors.Is(err, ErrBadReplay) {
			t.Errorf("%+v: err %v, want ErrBadReplay", req, err)
		}
	}
}

func TestSelectionInTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sel := Selection{Since: t0, Until: t0.Add(time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{t0.Add(-time.Second), false}, {t0, true}, {t0.Add(time.Hour), true}, {t0.Add(time.Hour + 1), false}} {
		if got := sel.InTime(&event.Event{IngestTime: tc.at}); got != tc.want {
			t.Errorf("InTime(%v) = %v", tc.at, got)
		}
	}
}

func TestDiffReportClassifiesChanges(t *testing.T) {
	d := &DiffReport{}
	ev := &event.Event{Seq: 1, RoutingKey: "k"}
	deliver := func(targets ...string) RouteOutcome {
		return RouteOutcome{Route: "r", Verdict: "deliver", Targets: targets}
	}
	d.add(ev, map[string]RouteOutcome{}, map[string]RouteOutcome{"r": deliver("a")})
	d.add(ev, map[string]RouteOutcome{"r": deliver("a")}, map[string]RouteOutcome{})
	d.add(ev, map[string]RouteOutcome{"r": deliver("a")}, map[string]RouteOutcome{"r": deliver("b")})
	before := deliver("a")
	before.Outputs = []Output{{Target: "a", RoutingKey: "k", Body: "1"}}
	after := deliver("a")
	after.Outputs = []Output{{Target: "a", RoutingKey: "k", Body: "2"}}
	d.add(ev, map[string]RouteOutcome{"r": before}, map[string]RouteOutcome{"r": after})
	d.add(ev, map[string]RouteOutcome{"r": before}, map[string]RouteOutcome{"r": before})
	if d.NewlyRouted != 1 || d.NoLongerRouted != 1 || d.RoutedElsewhere != 1 || d.OutputChanged != 1 || d.Unchanged != 1 {
		t.Fatalf("report %+v", d)
	}
	if len(d.Examples) != 4 {
		t.Fatalf("%d examples, want 4", len(d.Examples))
	}
}

// CountSelected reads record heads only; its totals must be what the selection covers.
func TestCountSelected(t *testing.T) {
	st, err := store.Open(store.Options{Path: t.TempDir() + "/log.db", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := []string{"order.created", "order.paid", "user.updated"}
	done := make(chan error, 90)
	for i := range 90 {
		ev := &event.Event{Source: "in", RoutingKey: keys[i%3], IngestTime: t0.Add(time.Duration(i) * time.Minute), Body: []byte{byte(i)}}
		st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
	}
	for range 90 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	cfg := &config.Config{
		Sources: []config.SourceSpec{{Name: "in"}, {Name: "other"}},
		Targets: []config.TargetSpec{{Name: "a", Exchange: "xa", Clusters: []string{"c"}}},
		Routes: []config.RouteSpec{
			{Name: "orders", Source: "in", Match: []string{"order.*"}, Targets: []string{"a"}},
			{Name: "paid", Source: "in", Match: []string{"*.paid"}, Targets: []string{"a"}},
			{Name: "elsewhere", Source: "other", Match: []string{"#"}, Targets: []string{"a"}},
		},
	}
	topo, err := NewTopology(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		sel           Selection
		events, pairs uint64
	}{
		// 60 order events, 30 of them paid, which both routes take.
		{"every route", Selection{Routes: topo.Routes, From: 1, To: 90}, 60, 90},
		{"one route", Selection{Routes: []*Route{topo.Route("paid")}, From: 1, To: 90}, 30, 30},
		{"seq range", Selection{Routes: topo.Routes, From: 4, To: 9}, 4, 6},
		// Minutes 30..59 ingested: seqs 31..60.
		{"time range", Selection{Routes: topo.Routes, From: 1, To: 90, Since: t0.Add(30 * time.Minute), Until: t0.Add(59 * time.Minute)}, 20, 30},
		{"another source", Selection{Routes: []*Route{topo.Route("elsewhere")}, From: 1, To: 90}, 0, 0},
		{"empty log", Selection{Routes: topo.Routes}, 0, 0},
	} {
		events, pairs, err := CountSelected(st, topo, &tc.sel)
		if err != nil || events != tc.events || pairs != tc.pairs {
			t.Errorf("%s: %d events, %d pairs, %v; want %d and %d", tc.name, events, pairs, err, tc.events, tc.pairs)
		}
	}
}

// The bbolt log is a boundedScanner: a stream's reads from it decode only what its window
// takes.
var _ boundedScanner = (*store.Store)(nil)
