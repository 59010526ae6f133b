package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestRefusedDeadLettersEnd: a target and its dead-letter target both have no queue bound, so
// the broker refuses every publish (mandatory flag). Each event is retried, dead-lettered, and
// its dead letter refused a bounded number of times, then left in the log and counted; the
// route goes on with the next event instead of retrying one dead letter forever.
func TestRefusedDeadLettersEnd(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	outX, dlqX := rabbit.Unique("e2e.noqueue"), rabbit.Unique("e2e.nodlq")
	rabbit.DeleteExchangeAtCleanup(t, outX)
	rabbit.DeleteExchangeAtCleanup(t, dlqX)
	path := writeConfig(t, dir, clusterBlock("main", rabbit.URL())+`source "in" {
  cluster  = "main"
  exchange = `+hclString(srcX)+`
  queue    = `+hclString(srcQ)+`
}
`+targetBlock("out", "main", outX)+targetBlock("dlq", "main", dlqX)+`
route "all" {
  source  = "in"
  targets = ["out"]
  retry {
    attempts = 1
  }
  dead_letter = "dlq"
}
`)
	r := startRouter(t, path)
	mustPublish(t, srcX,
		message{"first", amqp.Publishing{MessageId: "first", Body: []byte("{}")}},
		message{"second", amqp.Publishing{MessageId: "second", Body: []byte("{}")}},
	)
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := scrape(t, r.Admin)
		refused, _ := metricValue(m, "router_dead_letters_refused_total", map[string]string{"route": "all"})
		dead, _ := metricValue(m, "router_events_dead_lettered_total", map[string]string{"route": "all"})
		if refused == 2 && dead == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-lettered %v, refused dead letters %v; want both events dead-lettered and both dead letters given up", dead, refused)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The status and the readiness detail say so too; refused dead letters do not make the
	// router unready.
	code, body, err := get(r.Admin, "/api/v1/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/status: %d %v", code, err)
	}
	var st struct {
		Refused []struct {
			Route     string `json:"route"`
			Count     uint64 `json:"count"`
			LastError string `json:"last_error"`
		} `json:"refused_dead_letters"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Refused) != 1 || st.Refused[0].Route != "all" || st.Refused[0].Count != 2 || !strings.Contains(st.Refused[0].LastError, "NO_ROUTE") {
		t.Errorf("status refused_dead_letters: %s", body)
	}
	code, body = readyz(r.Admin)
	var ready struct {
		Status string   `json:"status"`
		Detail []string `json:"detail"`
	}
	if err := json.Unmarshal(body, &ready); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || len(ready.Detail) == 0 || !strings.Contains(strings.Join(ready.Detail, "\n"), "route all: 2 dead letters refused") {
		t.Errorf("/readyz %d: %s; want ready, with the refused dead letters in the detail", code, body)
	}
}
