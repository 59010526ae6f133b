package replaytest

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/router"
)

const waitMsgs = 30 * time.Second

// checkReplayed wants exactly the messages with ids want, replayed, in log order.
func checkReplayed(t *testing.T, got []amqp.Delivery, want []string) {
	t.Helper()
	for i, d := range got {
		if !isReplay(d) {
			t.Errorf("%s lacks x-router-replay=true: %v", d.MessageId, d.Headers)
		}
		if i > 0 && seqOf(d) <= seqOf(got[i-1]) {
			t.Errorf("out of log order: %s", describe(got))
		}
	}
	if !slices.Equal(messageIDs(got), want) {
		t.Errorf("replayed %v, want %v", messageIDs(got), want)
	}
}

func TestReplayBySeqAndTimeThroughAdminAPI(t *testing.T) {
	w := newWorld(t)
	out := w.bind(w.out)
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	cliCfg := w.writeConfig("cli.hcl", r.Admin, oneRoute)

	seqs := map[string]int64{}
	publish := func(prefix string) {
		w.publish("order."+prefix, ids(prefix, 5)...)
		for _, d := range out.take(5, waitMsgs) {
			if isReplay(d) {
				t.Errorf("live delivery %s carries the replay header", d.MessageId)
			}
			seqs[d.MessageId] = seqOf(d)
		}
	}
	publish("a")
	t1 := time.Now()
	publish("b")
	t2 := time.Now()
	publish("c")
	r.waitDelivered(t, 15)

	from, to := seqs["a-3"], seqs["b-2"]
	res := cli(t, "replay", "-c", cliCfg, "--from-seq", strconv.FormatInt(from, 10), "--to-seq", strconv.FormatInt(to, 10))
	if res.code != 0 || res.stdout != "replayed 5 events\n" {
		t.Fatalf("seq replay: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkReplayed(t, out.take(5, waitMsgs), []string{"a-3", "a-4", "a-5", "b-1", "b-2"})
	out.expectNone(w)

	res = cli(t, "replay", "-c", cliCfg, "--since", t1.Format(time.RFC3339Nano), "--until", t2.Format(time.RFC3339Nano))
	if res.code != 0 || res.stdout != "replayed 5 events\n" {
		t.Fatalf("time replay: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkReplayed(t, out.take(5, waitMsgs), ids("b", 5))
	out.expectNone(w)
}

func TestReplayKeepsLiveTrafficFlowing(t *testing.T) {
	w := newWorld(t)
	out := w.bind(w.out)
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	cliCfg := w.writeConfig("cli.hcl", r.Admin, oneRoute)
	w.publish("hist", ids("h", 30)...)
	out.take(30, waitMsgs)
	r.waitDelivered(t, 30)

	// 30 events at 20 a second: the replay lasts about 1.5s, and live events published once
	// it has begun must reach the target before it ends.
	done := make(chan cliResult, 1)
	go func() { done <- cli(t, "replay", "-c", cliCfg, "--rate", "20") }()
	first := out.take(1, waitMsgs)[0]
	if !isReplay(first) {
		t.Fatalf("first message after the replay started is not replayed: %s", describe([]amqp.Delivery{first}))
	}
	w.publish("live", ids("live", 10)...)
	rest := out.take(39, waitMsgs)
	all := append([]amqp.Delivery{first}, rest...)

	var replayed, live []amqp.Delivery
	lastLive, lastReplayed := -1, -1
	for i, d := range all {
		if isReplay(d) {
			replayed, lastReplayed = append(replayed, d), i
		} else {
			live, lastLive = append(live, d), i
		}
	}
	checkReplayed(t, replayed, ids("h", 30))
	if !slices.Equal(messageIDs(live), ids("live", 10)) {
		t.Errorf("live messages %v", messageIDs(live))
	}
	if lastLive > lastReplayed {
		t.Errorf("live traffic waited for the replay: %s", describe(all))
	}
	res := <-done
	if res.code != 0 || res.stdout != "replayed 30 events\n" {
		t.Fatalf("exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	r.waitDelivered(t, 40)
	out.expectNone(w)
}

// routesNow and routesCandidate differ in a route's match and in a route's target.
const (
	routesNow = `
route "orders" {
  source  = "in"
  match   = ["order.*"]
  targets = ["out"]
}
route "pay" {
  source  = "in"
  match   = ["payment.#"]
  targets = ["out"]
}`
	routesCandidate = `
route "orders" {
  source  = "in"
  match   = ["order.created", "user.*"]
  targets = ["out"]
}
route "pay" {
  source  = "in"
  match   = ["payment.#"]
  targets = ["out2"]
}`
)

func TestDryRunWithCandidateConfigThroughAdminAPI(t *testing.T) {
	w := newWorld(t)
	out := w.bind(w.out)
	out2 := w.bind(w.out2)
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", routesNow))
	cliCfg := w.writeConfig("cli.hcl", r.Admin, routesNow)
	candidate := w.writeConfig("candidate.hcl", r.Admin, routesCandidate)
	w.publish("order.created", "oc-1", "oc-2")
	w.publish("order.paid", "op-1", "op-2", "op-3")
	w.publish("payment.done", "pd-1", "pd-2")
	w.publish("user.signup", "us-1")
	out.take(7, waitMsgs)
	r.waitDelivered(t, 8)

	res := cli(t, "replay", "-c", cliCfg, "--dry-run", "--with-config", candidate, "--json")
	if res.code != 0 {
		t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
	}
	var p router.ReplayProgress
	if err := json.Unmarshal([]byte(res.stdout), &p); err != nil {
		t.Fatalf("%q: %v", res.stdout, err)
	}
	rep := p.DryRun
	if p.State != "done" || rep == nil || rep.Diff == nil {
		t.Fatalf("job %+v", p)
	}
	if rep.Events != 8 || rep.WouldReplay != 7 || rep.PerTarget["orders -> out"] != 5 || rep.PerTarget["pay -> out"] != 2 {
		t.Errorf("report: %+v", rep)
	}
	d := rep.Diff
	if d.NewlyRouted != 1 || d.NoLongerRouted != 3 || d.RoutedElsewhere != 2 || d.OutputChanged != 0 || d.Unchanged != 2 {
		t.Errorf("diff: %+v", *d)
	}
	for _, ex := range d.Examples {
		switch ex.Kind {
		case "newly_routed":
			if ex.MessageID != "us-1" || !slices.Equal(ex.After, []string{"out"}) {
				t.Errorf("newly routed example %+v", ex)
			}
		case "routed_elsewhere":
			if ex.Route != "pay" || !slices.Equal(ex.Before, []string{"out"}) || !slices.Equal(ex.After, []string{"out2"}) {
				t.Errorf("routed elsewhere example %+v", ex)
			}
		case "no_longer_routed":
			if !strings.HasPrefix(ex.MessageID, "op-") {
				t.Errorf("no longer routed example %+v", ex)
			}
		}
	}

	res = cli(t, "replay", "-c", cliCfg, "--dry-run", "--with-config", candidate, "--route", "pay")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "would replay 2 events\n") || !strings.Contains(res.stdout, "routed elsewhere  2") {
		t.Errorf("text report: exit %d, stdout:\n%s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	// A dry run delivers nothing.
	out.expectNone(w)
	out2.expectNone(w)
}

func TestOfflineReplayWithRouterStopped(t *testing.T) {
	w := newWorld(t)
	out := w.bind(w.out)
	cliCfg := w.logWithRouterStopped(out, ids("o", 6))

	res := cli(t, "replay", "-c", cliCfg, "--from-seq", "2", "--to-seq", "4")
	if res.code != 0 || res.stdout != "replayed 3 events\n" {
		t.Fatalf("exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkReplayed(t, out.take(3, waitMsgs), []string{"o-2", "o-3", "o-4"})
	out.expectNone(w)

	// With the router stopped, the log can be read.
	res = cli(t, "log", "list", "-c", cliCfg)
	var gotIDs []string
	for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var rec struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log list line %q: %v (stderr %s)", l, err, res.stderr)
		}
		gotIDs = append(gotIDs, rec.MessageID)
	}
	if res.code != 0 || !slices.Equal(gotIDs, ids("o", 6)) {
		t.Errorf("log list: exit %d, ids %v, stderr: %s", res.code, gotIDs, res.stderr)
	}
	res = cli(t, "log", "stats", "-c", cliCfg)
	var st struct {
		Count     uint64            `json:"count"`
		PerSource map[string]uint64 `json:"per_source"`
		Streams   []struct {
			Route, Target string
			Position, Lag uint64
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("log stats %q: %v (stderr %s)", res.stdout, err, res.stderr)
	}
	if st.Count != 6 || st.PerSource["in"] != 6 || len(st.Streams) != 1 || st.Streams[0].Route != "all" ||
		st.Streams[0].Target != "out" || st.Streams[0].Position != 6 || st.Streams[0].Lag != 0 {
		t.Errorf("log stats: %+v", st)
	}
}

func TestOfflineReplayStopsOnInterrupt(t *testing.T) {
	w := newWorld(t)
	out := w.bind(w.out)
	cliCfg := w.logWithRouterStopped(out, ids("o", 6))

	// Two events a second: interrupted after the first, the job cannot have sent all six.
	res := interruptAfter(t, func() { out.take(1, waitMsgs) }, "replay", "-c", cliCfg, "--rate", "2")
	if res.code != 1 || !strings.Contains(res.stderr, "router replay: stopped after") || !strings.Contains(res.stderr, "router replay --resume ") {
		t.Errorf("exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	var more []amqp.Delivery
	marker := markerIn(t, w, out)
	for d := out.take(1, waitMsgs)[0]; d.MessageId != marker; d = out.take(1, waitMsgs)[0] {
		more = append(more, d)
	}
	if len(more) >= 5 {
		t.Errorf("the replay went on after the interrupt: %s", describe(more))
	}
}

// deadAddr is a loopback address where nothing listens (a port just released).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestReplayWhenTheLogIsLockedAndNoAdminAPIAnswers(t *testing.T) {
	w := newWorld(t)
	w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	addr := deadAddr(t)
	cliCfg := w.writeConfig("cli.hcl", addr, oneRoute)
	res := cli(t, "replay", "-c", cliCfg, "--from-seq", "1")
	want := "is locked by a running router, but its admin API at " + addr + " does not answer"
	if res.code != 1 || !strings.Contains(res.stderr, want) {
		t.Errorf("replay: exit %d, stderr: %s", res.code, res.stderr)
	}
	for _, args := range [][]string{{"log", "list"}, {"dlq", "replay", "--route", "all"}} {
		res := cli(t, append(args, "-c", cliCfg)...)
		if res.code != 1 || !strings.Contains(res.stderr, "is locked by a running router") {
			t.Errorf("%v: exit %d, stderr: %s", args, res.code, res.stderr)
		}
	}
}
