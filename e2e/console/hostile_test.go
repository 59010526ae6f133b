package console

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// hostile are contents that would run script or change the page if they were ever taken as
// markup or as a link: tags, event handlers, javascript: URLs, and bidi controls that reorder
// what a reader sees.
var hostile = []string{
	`<script>window.__pwned = "script"</script>`,
	`<img src=x onerror="window.__pwned='img'">`,
	`javascript:window.__pwned='href'`,
	`"><svg onload="window.__pwned='svg'">`,
	"\u202egnp.exe\u202c bidi \u2066isolate\u2069",
}

func TestHostileContentsAreShownAsTextAndNoScriptRuns(t *testing.T) {
	w := newWorld(t, "")
	for i, h := range hostile {
		// The routing key is hostile too, behind a prefix the "orders" route matches.
		w.publish("order."+h, amqp.Publishing{
			MessageId:   h,
			ContentType: h,
			Type:        h,
			Headers:     amqp.Table{h: h, "link": `javascript:alert(1)`, "n": int32(i)},
			Body:        []byte(fmt.Sprintf(`{"html": %q, "n": %d}`, h, i)),
		})
	}
	// One with a raw (non-JSON) hostile body.
	w.publish("order.raw", amqp.Publishing{MessageId: "raw", Body: []byte(strings.Join(hostile, "\n"))})
	n := uint64(len(hostile) + 1)
	w.waitSettled(n)
	pages := []string{"/events", "/events?key=order.%23"}
	for seq := uint64(1); seq <= n; seq++ {
		pages = append(pages, fmt.Sprintf("/events/%d", seq))
	}
	for _, p := range pages {
		ready := "#events-table tbody tr[data-seq]"
		if strings.HasPrefix(p, "/events/") {
			ready = "#deliveries-table"
		}
		w.open(p, ready)
		var got struct {
			Pwned   any      `json:"pwned"`
			Scripts int      `json:"scripts"`
			Foreign []string `json:"foreign"`
			Links   []string `json:"links"`
			Text    string   `json:"text"`
		}
		w.eval(`({
			pwned: window.__pwned === undefined ? null : window.__pwned,
			scripts: document.scripts.length,
			foreign: [...document.querySelectorAll("#view img, #view svg:not(#flow svg), #view script, #view iframe, #view object, #view [onerror], #view [onload]")].map((e) => e.outerHTML.slice(0, 80)),
			links: [...document.querySelectorAll("a")].map((a) => a.getAttribute("href")),
			text: document.getElementById("view").textContent,
		})`, &got)
		if got.Pwned != nil {
			t.Errorf("%s: script ran: window.__pwned = %v", p, got.Pwned)
		}
		if got.Scripts != 1 {
			t.Errorf("%s: %d script elements, want the console's own only", p, got.Scripts)
		}
		if len(got.Foreign) > 0 {
			t.Errorf("%s: elements made from contents: %v", p, got.Foreign)
		}
		for _, l := range got.Links {
			if !strings.HasPrefix(l, "/") || strings.HasPrefix(l, "//") {
				t.Errorf("%s: a link leaves the console: %q", p, l)
			}
		}
		// The contents are there, as text.
		if !strings.Contains(got.Text, "<script>") && !strings.Contains(got.Text, "&lt;script") && p != "/events/6" {
			if !strings.Contains(got.Text, "onerror") && !strings.Contains(got.Text, "javascript:") && !strings.Contains(got.Text, "svg") && !strings.Contains(got.Text, "bidi") {
				t.Errorf("%s: the hostile text is not shown: %.300s", p, got.Text)
			}
		}
		if p == "/events/1" {
			w.screenshot("hostile")
			// Each body view keeps it text.
			for _, mode := range []string{"text", "hex", "json"} {
				w.run("body "+mode, clickMode(mode))
				var pwned any
				w.eval(`window.__pwned === undefined ? null : window.__pwned`, &pwned)
				if pwned != nil {
					t.Errorf("body as %s: script ran: %v", mode, pwned)
				}
			}
		}
	}
	// Following the stream shows new hostile events as text too.
	w.open("/events?follow=1", "#events-table")
	w.waitFor("stream open", `document.getElementById("search-info").textContent.startsWith("Following")`, 10*time.Second)
	w.publish("order.live", amqp.Publishing{MessageId: hostile[1], Body: []byte(hostile[0])})
	w.waitFor("live hostile event shown", `document.querySelectorAll("#events-table tbody tr[data-seq]").length === 1`, 15*time.Second)
	var pwned any
	w.eval(`window.__pwned === undefined ? null : window.__pwned`, &pwned)
	if pwned != nil {
		t.Errorf("stream: script ran: %v", pwned)
	}
	w.checkClean()
}
