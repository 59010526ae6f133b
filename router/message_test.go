package router

import (
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

func testRoute(t *testing.T, targets ...string) *Route {
	t.Helper()
	return testTopology(t, targets...).Routes[0]
}

// topoForTest rebuilds the one-route topology a test route came from.
func (r *Route) topoForTest(t *testing.T) *Topology { return testTopology(t, r.Spec.Targets...) }

func testTopology(t *testing.T, targets ...string) *Topology {
	t.Helper()
	cfg := &config.Config{
		Sources: []config.SourceSpec{{Name: "in"}},
		Targets: []config.TargetSpec{{Name: "a", Exchange: "xa", Clusters: []string{"c"}}, {Name: "b", Exchange: "xb", RoutingKey: "fixed", Clusters: []string{"c"}}},
		Routes:  []config.RouteSpec{{Name: "r", Source: "in", Match: []string{"#"}, Targets: targets, Retry: config.RetrySpec{Attempts: 3, Backoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}}},
	}
	topo, err := NewTopology(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestMessagesForAddsRouterHeadersAndKeepsTypes(t *testing.T) {
	r := testRoute(t, "a", "b")
	ev := &event.Event{
		Seq: 42, Source: "in", RoutingKey: "order.created", Body: []byte("x"),
		Headers: event.Table{"n": int64(1) << 40, "x-router-replay": true},
		Props:   event.Properties{MessageID: "m-1", DeliveryMode: 2},
	}
	d := Decision{Verdict: Pass, Event: ev}
	for _, tc := range []struct {
		target, key string
		replay      bool
	}{{"a", "order.created", false}, {"b", "fixed", true}} {
		tgt := &config.TargetSpec{Name: tc.target, Exchange: "x" + tc.target}
		if tc.target == "b" {
			tgt.RoutingKey = "fixed"
		}
		msgs := messagesFor(r, tgt, ev, &d, tc.replay, nil)
		if len(msgs) != 1 {
			t.Fatalf("%s: %d messages, want 1", tc.target, len(msgs))
		}
		m := msgs[0]
		if m.key != tc.key || m.exchange != tgt.Exchange || m.msg.MessageId != "m-1" {
			t.Errorf("%s: key %q exchange %q id %q", tc.target, m.key, m.exchange, m.msg.MessageId)
		}
		h := m.msg.Headers
		if h[event.HeaderRoute] != "r" || h[event.HeaderSource] != "in" || h[event.HeaderSeq] != int64(42) {
			t.Errorf("%s: router headers %v", tc.target, h)
		}
		if h["n"] != int64(1)<<40 {
			t.Errorf("%s: header n = %#v, want int64", tc.target, h["n"])
		}
		if _, ok := h[event.HeaderReplay]; ok != tc.replay {
			t.Errorf("%s: replay header present=%v, want %v", tc.target, ok, tc.replay)
		}
	}
	if _, ok := ev.Headers["x-router-replay"]; !ok {
		t.Error("building a message changed the logged event's headers")
	}
}

func TestEmittedMessagesGoOnlyToTheirTargetWithStableIDs(t *testing.T) {
	r := testRoute(t)
	ev := &event.Event{Seq: 7, Source: "in", RoutingKey: "k", Props: event.Properties{MessageID: "parent"}}
	d := Decision{Verdict: Pass, Event: ev, Emits: []wasmhost.Emit{
		{Target: "a", RoutingKey: "k.1", Body: []byte("1")},
		{Target: "b", RoutingKey: "k.2", Body: []byte("2")},
		{Target: "a", RoutingKey: "k.3", Body: []byte("3")},
	}}
	tgt := &config.TargetSpec{Name: "a", Exchange: "xa"}
	msgs := messagesFor(r, tgt, ev, &d, false, nil)
	if len(msgs) != 2 || msgs[0].key != "k.1" || msgs[1].key != "k.3" {
		t.Fatalf("messages for a: %+v", msgs)
	}
	if msgs[0].msg.MessageId != EmittedMessageID("parent", "r", 0) || msgs[1].msg.MessageId != EmittedMessageID("parent", "r", 2) {
		t.Errorf("emitted ids %q %q", msgs[0].msg.MessageId, msgs[1].msg.MessageId)
	}
	if msgs[0].msg.MessageId == msgs[1].msg.MessageId {
		t.Error("two emitted events share an id")
	}
	if msgs[0].msg.Headers[event.HeaderSeq] != int64(7) {
		t.Errorf("emitted event carries seq %v, want the parent's 7", msgs[0].msg.Headers[event.HeaderSeq])
	}
}

func TestDeadLetterMessageCarriesReasonAndAttempts(t *testing.T) {
	ev := &event.Event{Seq: 3, Source: "in", RoutingKey: "k", Props: event.Properties{MessageID: "m"}}
	msg := deadLetterMessage("r", ev, "NO_ROUTE", 4, false)
	if msg.Headers[event.HeaderError] != "NO_ROUTE" || msg.Headers[event.HeaderAttempts] != int32(4) {
		t.Fatalf("headers %v", msg.Headers)
	}
}

func TestAssignedMessageIDTellsIdenticalMessagesApart(t *testing.T) {
	var fp [16]byte
	t0 := time.Unix(1700000000, 0)
	if AssignedMessageID(fp, t0) != AssignedMessageID(fp, t0) {
		t.Error("the same event gets different ids")
	}
	if AssignedMessageID(fp, t0) == AssignedMessageID(fp, t0.Add(time.Nanosecond)) {
		t.Error("two identical messages ingested at different times share an id")
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	p := config.RetrySpec{Attempts: 10, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for attempt := 1; attempt <= 8; attempt++ {
		want := min(p.Backoff<<(attempt-1), p.MaxBackoff)
		for range 50 {
			d := backoff(p, attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestCursorNames(t *testing.T) {
	if got := CursorName("r", "t", ""); got != "deliver/r/t" {
		t.Error(got)
	}
	if got := CursorName("r", "t", "dr"); got != "deliver/r/t@dr" {
		t.Error(got)
	}
}

func testEventN(i int) *event.Event {
	return &event.Event{Source: "in", RoutingKey: "k", Body: []byte{byte(i), byte(i >> 8)}}
}
