package e2e

import (
	"bytes"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestBadMessages feeds messages that are unusual or over the size limit: an oversized one is
// rejected to the source queue's dead-letter exchange with a metric and nothing behind it
// waits; empty bodies, invalid UTF-8 in header strings and compressed bodies pass unchanged.
func TestBadMessages(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	dlx := rabbit.Unique("e2e.dlx")
	rabbit.DeleteExchangeAtCleanup(t, dlx)
	rejected := collect(t, targetQueue(t, dlx))
	outX := rabbit.Unique("e2e.out")
	out := collect(t, targetQueue(t, outX))
	path := writeConfig(t, dir, `router {
  max_message_size = "1KiB"
}
`+clusterBlock("main", rabbit.URL())+`source "in" {
  cluster  = "main"
  exchange = `+hclString(srcX)+`
  queue    = `+hclString(srcQ)+`
  dead_letter_exchange = `+hclString(dlx)+`
}
`+targetBlock("out", "main", outX)+`
route "all" {
  source  = "in"
  targets = ["out"]
}
`)
	r := startRouter(t, path)
	gzipped := []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0xff, 0xff}
	mustPublish(t, srcX,
		message{"big", amqp.Publishing{MessageId: "big", Body: bytes.Repeat([]byte("x"), 2048)}},
		message{"empty", amqp.Publishing{MessageId: "empty"}},
		message{"utf8", amqp.Publishing{MessageId: "utf8", Headers: amqp.Table{"bad": "\xff\xfe ok"}, Body: []byte("{}")}},
		message{"gzip", amqp.Publishing{MessageId: "gzip", ContentEncoding: "gzip", ContentType: "application/json", Body: gzipped}},
	)
	out.waitIDs(t, "target out", []string{"empty", "utf8", "gzip"}, 30*time.Second)
	got := deliveriesByID(t, "target out", out.messages())
	if d := got["empty"]; len(d.Body) != 0 {
		t.Errorf("empty body arrived as %q", d.Body)
	}
	if d := got["utf8"]; d.Headers["bad"] != "\xff\xfe ok" {
		t.Errorf("header with invalid UTF-8 arrived as %q", d.Headers["bad"])
	}
	if d := got["gzip"]; !bytes.Equal(d.Body, gzipped) || d.ContentEncoding != "gzip" {
		t.Errorf("gzip body or encoding changed: %x %q", d.Body, d.ContentEncoding)
	}
	rejected.waitIDs(t, "source dead-letter exchange", []string{"big"}, 30*time.Second)
	dead := deliveriesByID(t, "dead-letter exchange", rejected.messages())
	if deaths, _ := dead["big"].Headers["x-death"].([]any); len(deaths) == 0 {
		t.Errorf("the oversized message carries no x-death header: %v", dead["big"].Headers)
	}
	m := scrape(t, r.Admin)
	if v, _ := metricValue(m, "router_events_rejected_total", map[string]string{"source": "in", "reason": "oversize"}); v != 1 {
		t.Errorf("router_events_rejected_total{reason=oversize} = %v, want 1", v)
	}
	if v, _ := metricValue(m, "router_events_stored_total", map[string]string{"source": "in"}); v != 3 {
		t.Errorf("router_events_stored_total = %v, want 3 (the oversized message is not logged)", v)
	}
}
