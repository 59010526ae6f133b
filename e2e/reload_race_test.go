package e2e

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
)

// withQuery adds a query parameter to an AMQP URL: the same broker, another cluster block.
func withQuery(u, param string) string {
	if strings.Contains(u, "?") {
		return u + "&" + param
	}
	return u + "?" + param
}

func routeBlock(name, target string) string {
	return "route " + hclString(name) + " {\n  source  = \"in\"\n  targets = [" + hclString(target) + "]\n}\n"
}

// replayCopies splits a target's deliveries into live copies and replayed ones, by id.
func replayCopies(msgs []amqp.Delivery) (live, replayed map[string]int) {
	live, replayed = map[string]int{}, map[string]int{}
	for _, m := range msgs {
		if v, _ := m.Headers[event.HeaderReplay].(bool); v {
			replayed[m.MessageId]++
		} else {
			live[m.MessageId]++
		}
	}
	return live, replayed
}

// A reload that replaces the cluster connection of a replay job's target, and adds a route,
// while the job runs: the job finishes on the connection it started with and delivers each
// selected event once; the live stream moves to the new connection without a loss or a
// duplicate; the new route starts at the end of the log.
func TestReloadRacingReplay(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	x1, x2 := rabbit.Unique("e2e.rr.t1"), rabbit.Unique("e2e.rr.t2")
	t1, t2 := collect(t, targetQueue(t, x1)), collect(t, targetQueue(t, x2))
	config := func(url, routes string) string {
		return clusterBlock("main", url) + sourceBlock("in", "main", srcX, srcQ) +
			targetBlock("t1", "main", x1) + targetBlock("t2", "main", x2) + routes
	}
	path := writeConfig(t, dir, config(rabbit.URL(), routeBlock("all", "t1")))
	r := startRouter(t, path)

	const n = 400
	msgs, pre := numbered("pre", "k", n)
	mustPublish(t, srcX, msgs...)
	t1.waitIDs(t, "t1, live", pre, 60*time.Second)
	waitSettled(t, r.Admin, n, 30*time.Second)

	// About 4 s of replay at 100 events/s: the reload (well under a second) lands inside it.
	id, err := r.Engine.StartReplay(context.Background(), router.ReplayRequest{Routes: []string{"all"}, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		p, _ := r.Engine.ReplayStatus(id)
		return p.Done > 0
	}, func() string { return "the replay job delivers nothing" })

	writeConfig(t, dir, config(withQuery(rabbit.URL(), "heartbeat=30"), routeBlock("all", "t1")+routeBlock("extra", "t2")))
	before, _ := r.Engine.ReplayStatus(id)
	ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test")
	if !ans.Applied || ans.Generation != 2 {
		t.Fatalf("reload: %+v", ans)
	}
	if before.State != "running" {
		t.Fatalf("the replay job was %s before the reload; the test needs it running", before.State)
	}
	changes := strings.Join(changeStrings(ans), "\n")
	for _, want := range []string{`~ cluster "main": url`, `+ route "extra"`} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes lack %q:\n%s", want, changes)
		}
	}

	msgs, post := numbered("post", "k", 50)
	mustPublish(t, srcX, msgs...)
	var p router.ReplayProgress
	waitFor(t, 60*time.Second, func() bool {
		p, _ = r.Engine.ReplayStatus(id)
		return p.State != "running"
	}, func() string { return "the replay job never ended" })
	if p.State != "done" || p.Done != p.Total || p.Delivered != n {
		t.Errorf("replay job after the reload: %+v; want done, %d delivered", p, n)
	}

	t1.waitCount(t, "t1: live, replayed and post", 2*n+len(post), 60*time.Second)
	t2.waitIDs(t, "t2, the new route", post, 60*time.Second)
	live, replayed := replayCopies(t1.messages())
	for _, id := range pre {
		if live[id] != 1 || replayed[id] != 1 {
			t.Fatalf("t1: %s delivered %d times live, %d replayed; want once each", id, live[id], replayed[id])
		}
	}
	for _, id := range post {
		if live[id] != 1 || replayed[id] != 0 {
			t.Fatalf("t1: %s delivered %d times live, %d replayed; want once live", id, live[id], replayed[id])
		}
	}
	for _, m := range t2.messages() {
		if !strings.HasPrefix(m.MessageId, "post") {
			t.Fatalf("t2 got %s, logged before its route existed", m.MessageId)
		}
	}
	if d := t2.duplicates(); len(d) > 0 {
		t.Errorf("t2 got messages twice: %v", sample(countKeys(d)))
	}
	st := r.Engine.Status()
	if len(st.Clusters) != 1 || !st.Clusters[0].Connected {
		t.Errorf("clusters after the reload: %+v", st.Clusters)
	}
}

func changeStrings(ans app.ReloadAnswer) []string {
	var out []string
	for _, c := range ans.Changes {
		out = append(out, c.String())
	}
	return out
}

// silentBroker accepts TCP connections and never answers: a cluster whose first connection
// hangs. accepted receives each connection it took.
func silentBroker(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// A graceful stop while a reload waits for a new cluster that does not answer: the stop cuts
// the reload short (it changes nothing and says the router is stopping) instead of waiting
// for it, and a restart on the same log delivers what was left, once.
func TestReloadRacingGracefulStop(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	x1 := rabbit.Unique("e2e.rs.t1")
	t1 := collect(t, targetQueue(t, x1))
	base := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) + targetBlock("t1", "main", x1)
	path := writeConfig(t, dir, base+routeBlock("all", "t1"))
	r := startRouter(t, path)

	flow := publishUntilEnd(t, srcX, "flow", "k", 300)
	t1.waitCount(t, "t1, first deliveries", 50, 30*time.Second)

	addr, accepted := silentBroker(t)
	writeConfig(t, dir, base+clusterBlock("silent", "amqp://guest:guest@"+addr+"/")+
		targetBlock("t2", "silent", rabbit.Unique("e2e.rs.t2"))+routeBlock("all", "t1")+routeBlock("far", "t2"))
	answered := make(chan app.ReloadAnswer, 1)
	go func() { answered <- r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test") }()
	select {
	case <-accepted: // the reload is connecting the new cluster: it is under way
	case <-time.After(30 * time.Second):
		t.Fatal("the reload never dialled the new cluster")
	}
	start := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatalf("stopping during a reload: %v", err)
	}
	took := time.Since(start)
	ans := <-answered
	if ans.Applied || len(ans.Diagnostics) == 0 || !strings.Contains(strings.Join(ans.Diagnostics, "\n"), "stopping") {
		t.Errorf("reload cut short by the stop answered %+v; want refused, saying the router is stopping", ans)
	}
	t.Logf("graceful stop during a reload took %v", took.Round(time.Millisecond))
	ids, err := flow.end()
	if err != nil {
		t.Fatal(err)
	}

	// The configuration the router ran, again: everything published reaches t1 once.
	writeConfig(t, dir, base+routeBlock("all", "t1"))
	r2 := startRouter(t, path)
	t1.waitIDs(t, "t1 after the restart", ids, 60*time.Second)
	if d := t1.duplicates(); len(d) > 0 {
		t.Errorf("t1 got %d messages twice: %v", len(d), sample(countKeys(d)))
	}
	if st := r2.Engine.Status(); st.Generation != 1 {
		t.Errorf("generation %d after a restart", st.Generation)
	}
}

// A reload asked for at the moment a graceful stop begins: whichever comes first, the reload
// is applied whole or refused whole, the stop completes, and nothing is lost or duplicated
// across a restart on the configuration the file then holds.
func TestReloadAtStop(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	x1, x2 := rabbit.Unique("e2e.rst.t1"), rabbit.Unique("e2e.rst.t2")
	t1, t2 := collect(t, targetQueue(t, x1)), collect(t, targetQueue(t, x2))
	base := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("t1", "main", x1) + targetBlock("t2", "main", x2)
	path := writeConfig(t, dir, base+routeBlock("all", "t1"))
	r := startRouter(t, path)
	flow := publishUntilEnd(t, srcX, "flow", "k", 300)
	t1.waitCount(t, "t1, first deliveries", 50, 30*time.Second)

	writeConfig(t, dir, base+routeBlock("all", "t1")+routeBlock("extra", "t2"))
	answered := make(chan app.ReloadAnswer, 1)
	go func() { answered <- r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test") }()
	if err := r.Stop(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	ans := <-answered
	switch {
	case ans.Applied && ans.Generation == 2:
		t.Log("the reload came first")
	case !ans.Applied && strings.Contains(strings.Join(ans.Diagnostics, "\n"), "not running"):
		t.Log("the stop came first")
	default:
		t.Fatalf("reload at stop answered %+v", ans)
	}
	ids, err := flow.end()
	if err != nil {
		t.Fatal(err)
	}
	startRouter(t, path)
	t1.waitIDs(t, "t1 after the restart", ids, 60*time.Second)
	if d := t1.duplicates(); len(d) > 0 {
		t.Errorf("t1 got %d messages twice: %v", len(d), sample(countKeys(d)))
	}
	// The new route delivers what arrives after it starts, once.
	msgs, post := numbered("post", "k", 20)
	mustPublish(t, srcX, msgs...)
	t2.waitIDs(t, "t2 after the restart", post, 60*time.Second)
	if d := t2.duplicates(); len(d) > 0 {
		t.Errorf("t2 got %d messages twice: %v", len(d), sample(countKeys(d)))
	}
}
