package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store/streamlog"
)

// trafficUntil publishes order and EU payment events on a connection of its own, every few
// milliseconds, until ctx ends.
func (w *world) trafficUntil(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	conn := rabbit.Dial(w.t)
	ch := rabbit.Channel(w.t, conn)
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			key := "order.created"
			if i%2 == 1 {
				key = "payment.captured"
			}
			_ = ch.PublishWithContext(ctx, w.names.source, key, false, false, amqp.Publishing{
				Headers: amqp.Table{"region": "eu"}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			})
		}
	}()
	return done
}

func TestOverviewFlowShowsEveryRouteAndTargetWithRatesUnderTraffic(t *testing.T) {
	w := newWorld(t, "")
	ctx, stop := context.WithCancel(context.Background())
	done := w.trafficUntil(ctx)
	defer func() { stop(); <-done }()
	w.open("/", "#flow svg")
	// Every route -> target edge of the configuration carries traffic, except "parked"
	// (nothing is published there).
	want := map[string]bool{"orders>a": true, "orders>b": true, "eu>b": true}
	w.waitFor("every busy edge shows a rate",
		`(() => { const e = [...document.querySelectorAll('#flow g.edge[data-kind="route-target"]')];
		  const busy = e.filter((g) => Number(g.dataset.rate) > 0).map((g) => g.dataset.from + ">" + g.dataset.to);
		  return ["orders>a", "orders>b", "eu>b"].every((k) => busy.includes(k)); })()`, 20*time.Second)
	var nodes []string
	w.eval(`[...document.querySelectorAll('#flow g.node')].map((g) => g.dataset.kind + ":" + g.dataset.name)`, &nodes)
	for _, n := range []string{"source:in", "route:orders", "route:eu", "route:parked", "target:a", "target:b", "target:parked"} {
		if !strings.Contains(strings.Join(nodes, " "), n) {
			t.Errorf("flow graph lacks node %s: %v", n, nodes)
		}
	}
	var sourceRates []string
	w.eval(`[...document.querySelectorAll('#flow g.edge[data-kind="source-route"]')].filter((g) => Number(g.dataset.rate) > 0).map((g) => g.dataset.to)`, &sourceRates)
	if len(sourceRates) < 2 {
		t.Errorf("source -> route edges with a rate: %v, want orders and eu", sourceRates)
	}
	_ = want
	var ready string
	w.eval(`document.getElementById("readiness").textContent`, &ready)
	if ready != "ready" {
		t.Errorf("readiness pill says %q", ready)
	}
	w.screenshot("overview")
	// The same view on a phone.
	w.run("phone", chromedp.Emulate(device.IPhone12), chromedp.Navigate(w.base+"/"), chromedp.WaitVisible("#flow svg", chromedp.ByQuery))
	w.screenshot("overview-phone")
	w.checkClean()
}

func TestSearchByPatternAndHeaderAndOneEvent(t *testing.T) {
	w := newWorld(t, "")
	w.publish("order.created", amqp.Publishing{MessageId: "o1", Headers: amqp.Table{"tenant": "acme", "attempt": int32(3)}, Body: []byte(`{"id":1}`)})
	w.publish("order.paid", amqp.Publishing{MessageId: "o2", Headers: amqp.Table{"tenant": "globex"}, Body: []byte(`{"id":2}`)})
	w.publish("payment.captured", amqp.Publishing{MessageId: "p1", Headers: amqp.Table{"tenant": "acme", "region": "eu"}, Body: []byte("plain text")})
	w.publish("payment.refunded", amqp.Publishing{MessageId: "p2", Headers: amqp.Table{"region": "us"}, Body: []byte{0xff, 0x00, 0x10}})
	w.waitSettled(4)
	rows := func() []string {
		var ids []string
		w.eval(`[...document.querySelectorAll("#events-table tbody tr[data-seq]")].map((tr) => tr.cells[4].textContent)`, &ids)
		return ids
	}
	w.open("/events?key=order.*", "#events-table")
	if got := strings.Join(rows(), ","); got != "o1,o2" {
		t.Errorf("key=order.*: %s, want o1,o2", got)
	}
	w.screenshot("events")
	w.open("/events?header=tenant:acme", "#events-table")
	if got := strings.Join(rows(), ","); got != "o1,p1" {
		t.Errorf("header=tenant:acme: %s, want o1,p1", got)
	}
	// Through the form: a pattern and a header together.
	w.run("search form",
		chromedp.SetValue(`#search input[name="key"]`, "payment.#", chromedp.ByQuery),
		chromedp.SetValue(`#search input[name="header"]`, "region:us", chromedp.ByQuery),
		chromedp.Click(`#search button[type="submit"]`, chromedp.ByQuery))
	w.waitFor("form search", `location.search.includes("region") && document.querySelectorAll("#events-table tbody tr[data-seq]").length === 1`, 10*time.Second)
	if got := strings.Join(rows(), ","); got != "p2" {
		t.Errorf("form search: %s, want p2", got)
	}
	// One event: typed headers and deliveries.
	w.open("/events/1", "#deliveries-table")
	var headers [][]string
	w.eval(`[...document.querySelectorAll("#headers-table tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))`, &headers)
	if fmt.Sprint(headers) != "[[attempt int32 3] [tenant string acme]]" {
		t.Errorf("headers: %v", headers)
	}
	w.waitFor("deliveries delivered", `[...document.querySelectorAll("#deliveries-table tbody tr[data-route]")].map((tr) => tr.dataset.route + ">" + tr.dataset.target + ":" + tr.dataset.state).join(",") === "orders>a:delivered,orders>b:delivered"`, 10*time.Second)
	var body string
	w.eval(`document.getElementById("body").textContent`, &body)
	if !strings.Contains(body, `"id": 1`) {
		t.Errorf("body shown as JSON: %q", body)
	}
	w.screenshot("event")
	w.run("hex", chromedp.Click(`button[data-mode="hex"]`, chromedp.ByQuery))
	w.eval(`document.getElementById("body").textContent`, &body)
	if !strings.HasPrefix(body, "00000000  7b 22 69 64 22 3a 31 7d") {
		t.Errorf("hex: %q", body)
	}
	// A payment the EU filter dropped, and a binary body shown as hex.
	w.open("/events/4", "#deliveries-table")
	w.waitFor("dropped by the filter", `document.querySelector('#deliveries-table tr[data-route="eu"]').dataset.state === "dropped"`, 10*time.Second)
	w.eval(`document.getElementById("body").textContent`, &body)
	if !strings.HasPrefix(body, "00000000  ff 00 10") {
		t.Errorf("binary body: %q", body)
	}
	w.checkClean()
}

func TestRedriveFromTheConsoleDelivers(t *testing.T) {
	w := newWorld(t, "")
	w.publish("parked.one", amqp.Publishing{MessageId: "parked-1", Body: []byte("park me")})
	var dls []struct {
		ID  uint64 `json:"id"`
		Seq uint64 `json:"seq"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(dls) == 0 {
		w.api("/api/v1/dlq", &dls)
		if time.Now().After(deadline) {
			t.Fatal("no dead letter after 30s")
		}
		time.Sleep(50 * time.Millisecond) // the engine dead-letters on its own
	}
	// Now something listens on the parked exchange: a redrive gets through.
	q := rabbit.DeclareTargetQueueBound(t, w.ch, w.names.parked, "#")
	w.open("/dlq", "#dlq-table")
	w.screenshot("dlq")
	w.run("select and redrive",
		chromedp.Click(fmt.Sprintf(`#dlq-table tr[data-id="%d"] input[type="checkbox"]`, dls[0].ID), chromedp.ByQuery),
		chromedp.Click("#redrive", chromedp.ByQuery))
	w.waitFor("redrive done", `(() => { const r = document.querySelector(".job .report"); return r && r.dataset.state === "done"; })()`, 30*time.Second)
	got := rabbit.Collect(t, w.ch, q, 1, 10*time.Second)
	if len(got) != 1 || string(got[0].Body) != "park me" || got[0].Headers["x-router-replay"] != true {
		t.Fatalf("parked queue got %d messages: %+v", len(got), got)
	}
	var report string
	w.eval(`document.querySelector(".job .report").innerText`, &report)
	if !strings.Contains(report, "delivered") {
		t.Errorf("report: %s", report)
	}
	w.screenshot("dlq-redriven")
	w.checkClean()
}

func TestTokenIsAskedOnceAndKeptForTheTab(t *testing.T) {
	w := newWorld(t, "console-s3cret")
	w.publish("order.created", amqp.Publishing{MessageId: "secret-1", Body: []byte("{}")})
	w.waitSettled(1)
	w.open("/events", "#token-dialog[open]")
	w.screenshot("token")
	w.run("token", chromedp.SendKeys("#token-input", "console-s3cret", chromedp.ByQuery), chromedp.Click(`#token-form button[type="submit"]`, chromedp.ByQuery))
	w.waitFor("events after the token", `document.querySelectorAll("#events-table tbody tr[data-seq]").length === 1`, 10*time.Second)
	// Another view needs no second prompt; the token lives in sessionStorage only.
	w.run("event view", chromedp.Click(`#events-table a[data-nav]`, chromedp.ByQuery), chromedp.WaitVisible("#deliveries-table", chromedp.ByQuery))
	var store struct {
		Session string `json:"session"`
		Local   int    `json:"local"`
		Cookie  string `json:"cookie"`
		Open    bool   `json:"open"`
	}
	w.eval(`({session: sessionStorage.getItem("wasmrouter.admin_token"), local: localStorage.length, cookie: document.cookie, open: document.getElementById("token-dialog").open})`, &store)
	if store.Session != "console-s3cret" || store.Local != 0 || store.Cookie != "" || store.Open {
		t.Errorf("token storage: %+v", store)
	}
	// A wrong token is asked for again.
	w.run("wrong token", chromedp.Evaluate(`sessionStorage.setItem("wasmrouter.admin_token", "wrong")`, nil),
		chromedp.Navigate(w.base+"/dlq"), chromedp.WaitVisible("#token-dialog[open]", chromedp.ByQuery))
	w.checkClean()
}

// With the log on a RabbitMQ stream the overview names the router that delivers each pair:
// this one, when it runs alone.
func TestOverviewNamesEachPairsRouterOnAStreamLog(t *testing.T) {
	stream := rabbit.Unique("console.log")
	queues := []string{stream, streamlog.ControlStream(stream)}
	for _, p := range [][2]string{{"orders", "a"}, {"orders", "b"}, {"eu", "b"}, {"parked", "parked"}} {
		queues = append(queues, streamlog.LeaseQueue(stream, router.CursorName(p[0], p[1], "")))
	}
	for _, q := range queues { // deleted after the router stopped
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	w := newWorldStore(t, "", fmt.Sprintf("store {\n  backend = \"stream\"\n  cluster = \"main\"\n  stream  = %q\n}", stream))
	w.open("/", "#flow svg")
	w.waitFor("every pair delivered by this router",
		`[...document.querySelectorAll("#view td")].filter((td) => td.textContent === "this router").length === 4`, 30*time.Second)
	var heading string
	w.eval(`[...document.querySelectorAll("#view h2")].map((h) => h.textContent).find((t) => t.startsWith("Deliveries")) || ""`, &heading)
	if !strings.HasPrefix(heading, "Deliveries (this router: ") {
		t.Errorf("the deliveries card is headed %q; want it to name this router", heading)
	}
	w.screenshot("overview-stream-log")
	w.checkClean()
}
