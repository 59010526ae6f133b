package e2e

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
)

// richHeaders has a header of every AMQP field type amqp091-go and RabbitMQ carry.
func richHeaders() amqp.Table {
	return amqp.Table{
		"int8":    int8(-7),
		"uint8":   uint8(250),
		"int16":   int16(-30000),
		"uint16":  uint16(65000),
		"int32":   int32(-2000000000),
		"uint32":  uint32(4000000000),
		"int64":   int64(-1) << 40, // beyond 32 bits
		"float32": float32(1.25),
		"float64": 3.141592653589793,
		"decimal": amqp.Decimal{Scale: 3, Value: -123456},
		"time":    time.Unix(1700000123, 0).UTC(),
		"true":    true,
		"false":   false,
		"nil":     nil,
		"bytes":   []byte{0, 0xff, 'x', 0x80},
		"string":  "héllo, wörld",
		"table": amqp.Table{
			"n":     int64(1) << 33,
			"inner": amqp.Table{"flag": true, "list": []any{int16(1), "a"}},
		},
		"array": []any{int8(1), "two", 3.5, nil, []byte("b"), amqp.Table{"k": int32(4)}, []any{uint8(5)}},
	}
}

// TestFidelity checks that headers of every type, properties and body survive the hop, that
// the router adds its headers, assigns message ids where there are none, and keeps user_id
// only on a cluster where it is the login.
func TestFidelity(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	otherUser := rabbit.Unique("e2e-user")
	keptX, strippedX := rabbit.Unique("e2e.kept"), rabbit.Unique("e2e.stripped")
	kept, stripped := collect(t, targetQueue(t, keptX)), collect(t, targetQueue(t, strippedX))
	cfg := clusterBlock("main", rabbit.URL()) + clusterBlock("other", rabbit.AddUser(t, otherUser)) +
		sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("kept", "main", keptX) + targetBlock("stripped", "other", strippedX) + `
route "all" {
  source  = "in"
  targets = ["kept", "stripped"]
}
`
	r := startRouter(t, writeConfig(t, dir, cfg))

	full := amqp.Publishing{
		Headers:         richHeaders(),
		ContentType:     "application/x-e2e",
		ContentEncoding: "gzip",
		DeliveryMode:    amqp.Persistent,
		Priority:        7,
		CorrelationId:   "corr-1",
		ReplyTo:         "reply.queue",
		Expiration:      "3600000",
		MessageId:       "fidelity-full",
		Timestamp:       time.Unix(1700000000, 0).UTC(),
		Type:            "e2e.type",
		UserId:          "guest", // RabbitMQ accepts only the publisher's own login
		AppId:           "e2e-app",
		Body:            []byte{0, 1, 2, 0xfe, 0xff, '{', '}'},
	}
	// Two identical messages without a message id (as Celery sends them), transient.
	twin := amqp.Publishing{Headers: amqp.Table{"kind": "twin"}, DeliveryMode: amqp.Transient, Body: []byte("same")}
	mustPublish(t, srcX, message{"fid.full", full}, message{"fid.twin", twin}, message{"fid.twin", twin})

	kept.waitCount(t, "target kept", 3, 30*time.Second)
	stripped.waitCount(t, "target stripped", 3, 30*time.Second)
	waitSettled(t, r.Admin, 3, 30*time.Second)
	kept.stop()
	stripped.stop()
	if kept.count() != 3 || stripped.count() != 3 {
		t.Fatalf("kept got %d messages, stripped %d; want 3 each", kept.count(), stripped.count())
	}

	for _, c := range []struct {
		name   string
		got    []amqp.Delivery
		userID string
	}{{"kept", kept.messages(), "guest"}, {"stripped", stripped.messages(), ""}} {
		fullGot, twins := splitFidelity(t, c.name, c.got)
		checkFull(t, c.name, fullGot, c.userID)
		checkTwins(t, c.name, twins)
	}
	// The router assigns an id once, at ingest: both targets see the same id for an event.
	_, keptTwins := splitFidelity(t, "kept", kept.messages())
	_, strippedTwins := splitFidelity(t, "stripped", stripped.messages())
	for seq, d := range keptTwins {
		if o, ok := strippedTwins[seq]; !ok || o.MessageId != d.MessageId {
			t.Errorf("event seq %d: assigned message id %q at kept but %q at stripped", seq, d.MessageId, o.MessageId)
		}
	}
}

// splitFidelity separates the full message from the twins, keyed by x-router-seq.
func splitFidelity(t *testing.T, target string, got []amqp.Delivery) (amqp.Delivery, map[int64]amqp.Delivery) {
	t.Helper()
	var full amqp.Delivery
	twins := map[int64]amqp.Delivery{}
	for _, d := range got {
		if d.RoutingKey == "fid.full" {
			full = d
			continue
		}
		seq, _ := d.Headers["x-router-seq"].(int64)
		twins[seq] = d
	}
	if full.RoutingKey == "" || len(twins) != 2 {
		t.Fatalf("target %s: want the full message and two twins with distinct x-router-seq, got %d messages", target, len(got))
	}
	return full, twins
}

func checkFull(t *testing.T, target string, d amqp.Delivery, userID string) {
	t.Helper()
	want := richHeaders()
	for k, v := range want {
		if !sameValue(d.Headers[k], v) {
			t.Errorf("target %s: header %q arrived as %#v (%T), published as %#v (%T)", target, k, d.Headers[k], d.Headers[k], v, v)
		}
	}
	checkRouterHeaders(t, target, d, "all")
	if n := len(d.Headers); n != len(want)+3 {
		t.Errorf("target %s: %d headers arrived, want the %d published and 3 x-router-*: %v", target, n, len(want), d.Headers)
	}
	props := []struct {
		name      string
		got, want any
	}{
		{"content_type", d.ContentType, "application/x-e2e"},
		{"content_encoding", d.ContentEncoding, "gzip"},
		{"delivery_mode", d.DeliveryMode, amqp.Persistent},
		{"priority", d.Priority, uint8(7)},
		{"correlation_id", d.CorrelationId, "corr-1"},
		{"reply_to", d.ReplyTo, "reply.queue"},
		{"expiration", d.Expiration, "3600000"},
		{"message_id", d.MessageId, "fidelity-full"},
		{"type", d.Type, "e2e.type"},
		{"app_id", d.AppId, "e2e-app"},
		{"user_id", d.UserId, userID},
	}
	for _, p := range props {
		if p.got != p.want {
			t.Errorf("target %s: property %s arrived as %#v, want %#v", target, p.name, p.got, p.want)
		}
	}
	if !d.Timestamp.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("target %s: timestamp arrived as %v, want %v", target, d.Timestamp, time.Unix(1700000000, 0).UTC())
	}
	if !bytes.Equal(d.Body, []byte{0, 1, 2, 0xfe, 0xff, '{', '}'}) {
		t.Errorf("target %s: body arrived as %x", target, d.Body)
	}
}

func checkTwins(t *testing.T, target string, twins map[int64]amqp.Delivery) {
	t.Helper()
	ids := map[string]bool{}
	for seq, d := range twins {
		if d.MessageId == "" {
			t.Errorf("target %s: event seq %d arrived without a message id; the router must assign one", target, seq)
		}
		ids[d.MessageId] = true
		if d.DeliveryMode != amqp.Transient || string(d.Body) != "same" || d.Headers["kind"] != "twin" || !d.Timestamp.IsZero() {
			t.Errorf("target %s: twin seq %d changed: delivery mode %d, body %q, headers %v, timestamp %v (published without one)",
				target, seq, d.DeliveryMode, d.Body, d.Headers, d.Timestamp)
		}
		checkRouterHeaders(t, target, d, "all")
	}
	if len(ids) != 2 {
		t.Errorf("target %s: two identical messages published twice got the same assigned message id %v", target, ids)
	}
}

func checkRouterHeaders(t *testing.T, target string, d amqp.Delivery, route string) {
	t.Helper()
	for k, want := range map[string]any{"x-router-route": route, "x-router-source": "in"} {
		if got := d.Headers[k]; got != want {
			t.Errorf("target %s: message %s: header %s = %#v (%T), want %#v", target, d.MessageId, k, got, got, want)
		}
	}
	if seq, ok := d.Headers["x-router-seq"].(int64); !ok || seq <= 0 {
		t.Errorf("target %s: message %s: x-router-seq = %#v (%T), want a positive int64", target, d.MessageId, d.Headers["x-router-seq"], d.Headers["x-router-seq"])
	}
	if v, ok := d.Headers["x-router-replay"]; ok {
		t.Errorf("target %s: message %s: x-router-replay = %#v on a live delivery", target, d.MessageId, v)
	}
}

// sameValue compares AMQP values with their Go types; timestamps by instant, since the
// library decodes them in the local zone.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case amqp.Table:
		g, ok := got.(amqp.Table)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if !sameValue(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(got, want) && fmt.Sprintf("%T", got) == fmt.Sprintf("%T", want)
	}
}

// TestFidelityOfAReplay: a replay read from the log's file (the router restarted, so that
// nothing comes from memory) delivers the message a live delivery did, header for header with
// the same types and values, properties and body, with x-router-replay = true added: the
// replayed headers are encoded from the log's bytes (router/loggedheaders.go), the live ones
// from the decoded table.
func TestFidelityOfAReplay(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	outX := rabbit.Unique("e2e.replayed")
	out := collect(t, targetQueue(t, outX))
	path := writeConfig(t, dir, allToOut(srcX, srcQ, outX))
	r := startRouter(t, path)
	full := amqp.Publishing{
		Headers: richHeaders(), ContentType: "application/x-e2e", ContentEncoding: "gzip",
		DeliveryMode: amqp.Persistent, Priority: 7, CorrelationId: "corr-1", ReplyTo: "reply.queue",
		Expiration: "3600000", MessageId: "fidelity-full", Timestamp: time.Unix(1700000000, 0).UTC(),
		Type: "e2e.type", UserId: "guest", AppId: "e2e-app", Body: []byte{0, 1, 2, 0xfe, 0xff, '{', '}'},
	}
	mustPublish(t, srcX, message{"fid.full", full})
	out.waitCount(t, "live", 1, 30*time.Second)
	waitSettled(t, r.Admin, 1, 30*time.Second)
	stopTimed(t, r)

	r = startRouter(t, path)
	id, err := r.Engine.StartReplay(context.Background(), router.ReplayRequest{Routes: []string{"all"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := r.Engine.WaitReplay(ctx, id); err != nil || p.State != "done" || p.Delivered != 1 {
		t.Fatalf("replay: %+v, %v", p, err)
	}
	out.waitCount(t, "live and replayed", 2, 30*time.Second)
	out.stop()
	got := out.messages()
	live, replayed := got[0], got[1]
	if _, ok := live.Headers["x-router-replay"]; ok {
		live, replayed = replayed, live
	}
	checkFull(t, "out, live", live, "guest")
	if replayed.Headers["x-router-replay"] != true {
		t.Errorf("replayed: x-router-replay = %#v (%T), want true", replayed.Headers["x-router-replay"], replayed.Headers["x-router-replay"])
	}
	delete(replayed.Headers, "x-router-replay")
	if len(replayed.Headers) != len(live.Headers) {
		t.Errorf("replayed: %d headers besides x-router-replay, live %d: %v", len(replayed.Headers), len(live.Headers), replayed.Headers)
	}
	for k, v := range live.Headers {
		if !sameValue(replayed.Headers[k], v) {
			t.Errorf("replayed: header %q arrived as %#v (%T), live as %#v (%T)", k, replayed.Headers[k], replayed.Headers[k], v, v)
		}
	}
	checkFull(t, "out, replayed", replayed, "guest") // x-router-replay taken out above
}
