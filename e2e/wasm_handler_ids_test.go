package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// emittedCopy is what identifies one emitted message apart from its id.
type emittedCopy struct {
	key, body string
	seq       int64
}

func emittedCopyOf(d amqp.Delivery) emittedCopy {
	seq, _ := d.Headers["x-router-seq"].(int64)
	return emittedCopy{key: d.RoutingKey, body: string(d.Body), seq: seq}
}

// TestHandlerIDsStableAcrossReplayAndRestart: the splitter's emitted messages keep their
// message ids when a replay (POST /api/v1/replay) re-runs the handler, and when a restart
// finds the delivery cursor behind (as after a crash before the position was saved) and runs
// it again. One parent has no message id: the id the router assigned at ingest is the base.
func TestHandlerIDsStableAcrossReplayAndRestart(t *testing.T) {
	rabbit.SkipIfShort(t)
	splitter := wasmGoGuest(t, "splitter")
	srcX, srcQ := sourceNames(t)
	itemsX, dlqX := rabbit.Unique("e2e.items"), rabbit.Unique("e2e.dlq")
	items := collect(t, targetQueue(t, itemsX))
	rabbit.DeleteExchangeAtCleanup(t, dlqX)
	dir := wasmDir(t)
	cfg := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("items", "main", itemsX) + targetBlock("dlq", "main", dlqX) + splitterRoute(splitter, `[]`)
	path := writeConfig(t, dir, cfg)
	r := startRouter(t, path)

	noID := splitParent("", "order.created", `{"items":[{"n":1},{"n":2},{"n":3}]}`)
	mustPublish(t, srcX,
		splitParent("ids-1", "order.created", `{"items":["a","b"]}`),
		noID,
		splitParent("ids-3", "order.updated", `{"items":[{"c":true}]}`))
	const emits = 6
	items.waitCount(t, "first delivery", emits, 30*time.Second)
	waitSettled(t, r.Admin, 3, 30*time.Second)
	first := deliveriesByID(t, "first delivery", items.messages())
	if len(first) != emits {
		t.Fatalf("first delivery: %d distinct ids for %d emitted messages", len(first), emits)
	}
	for _, id := range []string{router.EmittedMessageID("ids-1", "split", 0),
		router.EmittedMessageID("ids-1", "split", 1), router.EmittedMessageID("ids-3", "split", 0)} {
		if _, ok := first[id]; !ok {
			t.Errorf("no emitted message with id %s, derived from its parent's", id)
		}
	}

	jobID := wasmPostReplay(t, r.Admin, `{"routes":["split"],"target":"items"}`)
	wasmWaitReplay(t, r.Admin, jobID, 30*time.Second)
	items.waitCount(t, "after the replay", 2*emits, 30*time.Second)
	checkSameIDs(t, "replay", first, items.messages()[emits:], true)
	stopTimed(t, r)

	// A restart with the items cursor back at 0: the stream runs the handler over the log again.
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "data", "router.db")})
	if err != nil {
		t.Fatalf("opening the stopped router's log: %v", err)
	}
	if err := st.ResetCursor(router.CursorName("split", "items", ""), 0); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r = startRouter(t, path)
	items.waitCount(t, "after the restart", 3*emits, 30*time.Second)
	waitSettled(t, r.Admin, 3, 30*time.Second)
	checkSameIDs(t, "restart", first, items.messages()[2*emits:], false)
	if n := items.count(); n != 3*emits {
		t.Errorf("items got %d messages in all, want %d", n, 3*emits)
	}
}

// checkSameIDs checks that again holds exactly the messages of first (same ids, each with
// the same key, body and parent seq), marked as a replay or not.
func checkSameIDs(t *testing.T, what string, first map[string]amqp.Delivery, again []amqp.Delivery, replay bool) {
	t.Helper()
	seen := deliveriesByID(t, what, again)
	for id, d := range first {
		a, ok := seen[id]
		if !ok {
			t.Errorf("%s: emitted id %s (%s) not sent again", what, id, d.Body)
			continue
		}
		if emittedCopyOf(a) != emittedCopyOf(d) {
			t.Errorf("%s: %s is %+v, was %+v", what, id, emittedCopyOf(a), emittedCopyOf(d))
		}
		if replay {
			headerIs(t, what, a, "x-router-replay", true)
		} else if _, ok := a.Headers["x-router-replay"]; ok {
			t.Errorf("%s: %s carries x-router-replay", what, id)
		}
	}
	for id, d := range seen {
		if _, ok := first[id]; !ok {
			t.Errorf("%s: new id %s (%s), not in the first delivery", what, id, d.Body)
		}
	}
}

// wasmPostReplay starts a replay through the admin API and returns the job id.
func wasmPostReplay(t *testing.T, admin, body string) string {
	t.Helper()
	resp, err := httpClient.Post("http://"+admin+"/api/v1/replay", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ ID, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusAccepted || doc.ID == "" {
		t.Fatalf("POST /api/v1/replay %s: %d %+v %v; want 202 and an id", body, resp.StatusCode, doc, err)
	}
	return doc.ID
}

// wasmWaitReplay polls the job until it is done, failing on any other end.
func wasmWaitReplay(t *testing.T, admin, id string, timeout time.Duration) {
	t.Helper()
	var last string
	waitFor(t, timeout, func() bool {
		code, body, err := get(admin, "/api/v1/replay/"+id)
		var p struct{ State string }
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &p) != nil {
			last = fmt.Sprintf("%d %v %s", code, err, body)
			return false
		}
		last = string(body)
		if p.State != "running" && p.State != "done" {
			t.Fatalf("replay %s ended %s: %s", id, p.State, body)
		}
		return p.State == "done"
	}, func() string { return "replay " + id + " not done: " + last })
}

// TestHandlerIDsAfterCrash kills the router process (SIGKILL) while the splitter's messages
// flow and restarts it: what the restart sends again carries the ids of the first sending, so
// every id is one of those derived from the parents, and all copies of an id are the same.
func TestHandlerIDsAfterCrash(t *testing.T) {
	rabbit.SkipIfShort(t)
	splitter := wasmGoGuest(t, "splitter")
	admin := freeAddr(t)
	srcX, srcQ := sourceNames(t)
	itemsX, dlqX := rabbit.Unique("e2e.items"), rabbit.Unique("e2e.dlq")
	items := collect(t, targetQueue(t, itemsX))
	rabbit.DeleteExchangeAtCleanup(t, dlqX)
	cfg := processConfig(admin) + clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("items", "main", itemsX) + targetBlock("dlq", "main", dlqX) + splitterRoute(splitter, `[]`)
	path := writeConfig(t, wasmDir(t), cfg)
	first := startProcess(t, path, admin)

	const parents, perParent = 400, 3
	msgs := make([]message, parents)
	want := map[string]emittedCopy{}
	for i := range msgs {
		id := fmt.Sprintf("crash-split-%04d", i)
		msgs[i] = splitParent(id, "order.created", fmt.Sprintf(`{"items":[{"p":%d,"i":0},{"p":%d,"i":1},{"p":%d,"i":2}]}`, i, i, i))
		for j := range perParent {
			want[router.EmittedMessageID(id, "split", j)] = emittedCopy{key: "order.created.item", body: fmt.Sprintf(`{"p":%d,"i":%d}`, i, j)}
		}
	}
	traffic := publishInBackground(t, srcX, msgs, 400)
	items.waitCount(t, "before the crash", parents*perParent/4, 60*time.Second)
	first.kill(t)
	atKill := items.count()
	first.checkNoRace(t)

	second := startProcess(t, path, admin)
	traffic.wait(t)
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	items.waitIDs(t, "target items after the restart", ids, 90*time.Second)
	waitSettled(t, admin, parents, 30*time.Second)

	seqs := map[string]int64{}
	for _, d := range items.messages() {
		w, ok := want[d.MessageId]
		got := emittedCopyOf(d)
		switch {
		case !ok:
			t.Errorf("unknown id %s (%s): not derived from a parent's id", d.MessageId, d.Body)
		case got.key != w.key || got.body != w.body:
			t.Errorf("%s arrived as %s %s, want %s %s", d.MessageId, got.key, got.body, w.key, w.body)
		case seqs[d.MessageId] != 0 && seqs[d.MessageId] != got.seq:
			t.Errorf("%s arrived with x-router-seq %d and %d", d.MessageId, seqs[d.MessageId], got.seq)
		}
		seqs[d.MessageId] = got.seq
	}
	t.Logf("killed with %d of %d emitted messages delivered; after the restart all arrived, %d ids more than once",
		atKill, len(want), len(items.duplicates()))
	if code := second.terminate(t, stopTimeout); code != 0 {
		t.Errorf("router exited with status %d after SIGTERM, want 0", code)
	}
	second.checkNoRace(t)
}
