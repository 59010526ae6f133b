package router_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
)

const deadLetterTarget = `
target "a" {
  cluster  = "main"
  exchange = "xa"
}
target "dlq" {
  cluster  = "main"
  exchange = "xdlq"
}
route "r" {
  source      = "in"
  targets     = ["a"]
  dead_letter = "dlq"
  retry {
    attempts    = 1
    backoff     = "1ms"
    max_backoff = "1ms"
  }
}
`

// A burst of dead letters goes out with its confirms in flight, in the order they were
// recorded; what an outage took is sent again, in order, and the cursor ends past them all.
func TestDeadLettersGoOutWindowedAndInOrder(t *testing.T) {
	r := newRig(t, deadLetterTarget, rigOptions{})
	tgt := r.targets["main"]
	tgt.Refuse(func(m *event.Message) error {
		if m.Exchange == "xa" {
			return errors.New("NOT_FOUND")
		}
		return nil
	})
	tgt.HoldConfirms(true)
	want := bodies("d", 40)
	r.publish("k", want...)
	// One at a time, a single dead letter would be waiting for its confirm here.
	r.waitFor("every dead letter published before the first confirm", func() bool { return tgt.Unconfirmed() == len(want) })
	tgt.Confirm(10)
	tgt.SetDown(true) // the 30 still in flight are lost with the connection
	tgt.HoldConfirms(false)
	tgt.SetDown(false)
	got := r.received("xdlq", len(want))
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("dead-letter target received %v, want %v", got, want)
	}
	for i, m := range tgt.Received("xdlq") {
		if reason, _ := m.Headers[event.HeaderError].(string); !strings.Contains(reason, "NOT_FOUND") {
			t.Fatalf("dead letter %d carries reason %q", i, reason)
		}
	}
	r.waitFor("the dead-letter cursor past every dead letter", func() bool {
		pos, _ := r.log.Cursor(router.DeadLetterCursor("r"))
		return pos == uint64(len(want))
	})
}
