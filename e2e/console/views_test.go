package console

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
)

func TestReplayStartsWithItsDryRunAndModulesAndConfigurationShow(t *testing.T) {
	w := newWorld(t, "")
	for _, region := range []string{"eu", "us", "eu"} {
		w.publish("payment.captured", amqp.Publishing{Headers: amqp.Table{"region": region}, Body: []byte(`{}`)})
	}
	w.publish("order.created", amqp.Publishing{Body: []byte(`{}`)})
	w.waitSettled(4)

	w.open("/replays", "#replay-form")
	var disabled bool
	w.eval(`document.getElementById("start-replay").disabled`, &disabled)
	if !disabled {
		t.Error("the replay can start before its dry run")
	}
	w.run("dry run", chromedp.SetValue(`#replay-form input[name="from_seq"]`, "1", chromedp.ByQuery), chromedp.Click("#dry-run", chromedp.ByQuery))
	w.waitFor("dry-run report", `(() => { const r = document.querySelector("#dry-report .report"); return r && r.dataset.state === "done" && !document.getElementById("start-replay").disabled; })()`, 20*time.Second)
	var report string
	w.eval(`document.getElementById("dry-report").innerText`, &report)
	if !strings.Contains(report, "would replay") {
		t.Errorf("dry-run report: %s", report)
	}
	w.screenshot("replays-dry-run")
	w.run("replay", chromedp.Click("#start-replay", chromedp.ByQuery))
	w.waitFor("replay job listed done", `[...document.querySelectorAll("#jobs tbody tr[data-id]")].some((tr) => tr.cells[1].textContent === "done")`, 20*time.Second)
	w.screenshot("replays")

	w.open("/modules", `#modules-table tr[data-module="eu_only"]`)
	var calls string
	w.eval(`document.querySelector('#modules-table tr[data-module="eu_only"]').cells[2].textContent`, &calls)
	if !strings.Contains(calls, "drop 3") || !strings.Contains(calls, "continue 6") {
		t.Errorf("module results: %q, want continue 6 and drop 3 (the live route, the dry run and the replay each decide the 3 payments)", calls)
	}
	w.screenshot("modules")

	// The generation and the reloads (GET /api/v1/config); a reload from the page, its dry run
	// first, lands in the history.
	var info map[string]any
	if code := w.api("/api/v1/config", &info); code != 200 {
		t.Fatalf("GET /api/v1/config: %d", code)
	}
	w.open("/config", "#generation")
	w.waitFor("topology shown", `document.getElementById("view").textContent.includes("eu_only")`, 10*time.Second)
	w.waitFor("generation shown", `document.getElementById("generation").textContent.includes("generation")`, 10*time.Second)
	w.run("reload dry run", chromedp.Click("#reload-check", chromedp.ByQuery))
	w.waitFor("dry run answered, apply enabled", `(() => { const p = document.querySelector("#reload pre"); return p && p.textContent === "no changes" && !document.getElementById("reload-apply").disabled; })()`, 20*time.Second)
	w.run("reload", chromedp.Click("#reload-apply", chromedp.ByQuery))
	w.waitFor("both reloads in the history", `(() => { const rows = [...document.querySelectorAll("#reloads-table tbody tr[data-result]")].map((tr) => tr.dataset.result + " " + tr.cells[1].textContent); return rows.includes("dry_run api") && rows.includes("unchanged api"); })()`, 20*time.Second)
	w.screenshot("config")
	w.checkClean()
}
