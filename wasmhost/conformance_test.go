package wasmhost

import (
	"context"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// The ABI conformance suite: one table, run against the Go guest (built with guest/wr) and the C
// guest (built with wasmrouter.h), which implement the same ops (testdata/c/conformance.c).

var conformanceConfig = map[string]string{
	"init":  "from-config",
	"a":     "1",
	"long":  strings.Repeat("c", 1000),
	"empty": "",
}

type confCase struct {
	name    string
	role    Role
	in      *Invocation
	code    Code
	reason  string         // a substring of Outcome.Reason; "" requires an empty reason
	headers map[string]any // expected entries of the event's headers afterwards
	body    *string        // expected body afterwards
	key     string         // expected routing key afterwards ("" = unchanged)
	emits   []Emit
	logs    []logRecord // records expected in the router log (Msg, Level, Attrs subset)
}

func str(s string) *string { return &s }

// headerTypes holds one header of every AMQP type, with the text header_get must give.
var headerTypes = []struct {
	name string
	val  any
	text string
}{
	{"s", "text", "text"},
	{"bytes", []byte("raw\x00bytes"), "raw\x00bytes"},
	{"t", true, "true"},
	{"f", false, "false"},
	{"i8", int8(-8), "-8"},
	{"u8", uint8(200), "200"},
	{"i16", int16(-1600), "-1600"},
	{"u16", uint16(60000), "60000"},
	{"i32", int32(-2000000000), "-2000000000"},
	{"u32", uint32(4000000000), "4000000000"},
	{"i64", int64(-9000000000000000000), "-9000000000000000000"},
	{"f32", float32(1.5), "1.5"},
	{"f64", 0.1, "0.1"},
	{"fbig", 1e21, "1e+21"},
	{"fsmall", 1e-7, "1e-7"},
	{"nan", math.NaN(), "NaN"},
	{"inf", math.Inf(-1), "-Inf"},
	{"dec", event.Decimal{Scale: 2, Value: -1234}, "-12.34"},
	{"dec0", event.Decimal{Scale: 0, Value: 7}, "7"},
	{"decsmall", event.Decimal{Scale: 5, Value: 42}, "0.00042"},
	{"ts", time.Unix(1700000000, 0), `"2023-11-14T22:13:20Z"`},
	{"null", nil, "null"},
	{"arr", []any{int32(1), "a", true, nil, []byte("hi")}, `[1,"a",true,null,"aGk="]`},
	{"tbl", event.Table{"b": int64(2), "a": "x\"y\n", "n": event.Table{"x": 1.5, "d": event.Decimal{Scale: 1, Value: 5}}},
		`{"a":"x\"y\n","b":2,"n":{"d":0.5,"x":1.5}}`},
	{"long", strings.Repeat("h", 1000), strings.Repeat("h", 1000)},
	{"empty", "", ""},
}

func conformanceCases() []confCase {
	typed := op("header")
	var names []string
	wantTyped := map[string]any{"h.missing": "<absent>"}
	for _, h := range headerTypes {
		typed.Event.Headers[h.name] = h.val
		names = append(names, h.name)
		wantTyped["h."+h.name] = h.text
	}
	typed.Event.Headers["names"] = strings.Join(append(names, "missing"), ",")

	bare := op("meta")
	bare.Event.Props = event.Properties{}
	bare.Event.Exchange = ""
	bare.Route = ""

	unknownTargets := op("emit", "target", "out", "key", "k")
	unknownTargets.KnownTarget = nil

	return []confCase{
		{name: "return continue", role: RoleFilter, in: op("return", "code", "0"), code: Continue},
		{name: "return drop", role: RoleFilter, in: op("return", "code", "1"), code: Drop},
		{name: "return retry", role: RoleFilter, in: op("return", "code", "2"), code: Retry},
		{name: "return dead letter", role: RoleFilter, in: op("return", "code", "3"), code: DeadLetter},
		{name: "unknown result code", role: RoleFilter, in: op("return", "code", "7"), code: Retry, reason: "unknown result code 7"},
		{name: "negative result code", role: RoleFilter, in: op("return", "code", "-1"), code: Retry, reason: "unknown result code -1"},
		{name: "meta", role: RoleTransform, in: op("meta"), code: Continue, headers: map[string]any{
			"m.routing_key": "order.created", "m.exchange": "events", "m.source": "in", "m.route": "orders",
			"m.message_id": "m-1", "m.correlation_id": "c-1", "m.content_type": "application/json",
			"m.type": "order", "m.app_id": "shop", "m.timestamp": "1700000000123", "m.seq": "42",
			"m.nope": "<absent>",
		}},
		{name: "meta absent", role: RoleTransform, in: bare, code: Continue, headers: map[string]any{
			"m.routing_key": "order.created", "m.exchange": "", "m.route": "", "m.message_id": "<absent>",
			"m.correlation_id": "<absent>", "m.content_type": "<absent>", "m.type": "<absent>",
			"m.app_id": "<absent>", "m.timestamp": "<absent>",
		}},
		{name: "header types", role: RoleTransform, in: typed, code: Continue, headers: wantTyped},
		{name: "config", role: RoleTransform, in: op("config", "names", "a,long,empty,missing"), code: Continue,
			headers: map[string]any{"c.a": "1", "c.long": conformanceConfig["long"], "c.empty": "", "c.missing": "<absent>"}},
		{name: "config during init", role: RoleTransform, in: op("initcfg"), code: Continue,
			headers: map[string]any{"init": "from-config"}},
		{name: "buffer too small", role: RoleTransform, in: op("small"), code: Continue,
			headers: map[string]any{"small": "13:ord#####:13"}},
		{name: "body", role: RoleTransform, in: op("body"), code: Continue, body: str(`<{"amount":5}>`)},
		{name: "routing key", role: RoleTransform, in: op("rk", "value", "new.key"), code: Continue, key: "new.key"},
		{name: "routing key 255", role: RoleTransform, in: op("rk", "value", strings.Repeat("k", 255)), code: Continue,
			key: strings.Repeat("k", 255)},
		{name: "routing key 256", role: RoleTransform, in: op("rk", "value", strings.Repeat("k", 256)), code: Retry,
			reason: "routing_key_set: routing key of 256 bytes exceeds 255"},
		{name: "header set", role: RoleTransform, in: op("hset", "name", "x-new", "value", "v"), code: Continue,
			headers: map[string]any{"x-new": "v"}},
		{name: "header set replaces", role: RoleTransform, in: op("hset", "name", "op", "value", "v2"), code: Continue,
			headers: map[string]any{"op": "v2"}},
		{name: "emit", role: RoleHandler, in: op("emit", "target", "out", "key", "k.1", "count", "2"), code: Continue,
			emits: []Emit{{"out", "k.1", []byte(`{"amount":5}`)}, {"out", "k.1", []byte(`{"amount":5}`)}}},
		{name: "emit unknown target", role: RoleHandler, in: op("emit", "target", "nope", "key", "k"), code: DeadLetter,
			reason: "emit returned -1"},
		{name: "emit without known targets", role: RoleHandler, in: unknownTargets, code: DeadLetter, reason: "emit returned -1"},
		{name: "error set dead letter", role: RoleFilter, in: op("error", "reason", "bad thing", "code", "3"), code: DeadLetter,
			reason: "bad thing"},
		{name: "error set retry", role: RoleHandler, in: op("error", "reason", "try later", "code", "2"), code: Retry,
			reason: "try later"},
		{name: "error set long", role: RoleFilter, in: op("error", "reason", strings.Repeat("r", 5000), "code", "3"),
			code: DeadLetter, reason: strings.Repeat("r", MaxReasonLen)},
		{name: "log", role: RoleFilter, in: op("log", "level", "2", "msg", "hello log"), code: Continue,
			logs: []logRecord{{Level: slog.LevelWarn, Msg: "hello log", Attrs: map[string]string{"stream": "log"}}}},
		{name: "stdout and stderr", role: RoleFilter, in: op("print", "msg", "printed"), code: Continue,
			logs: []logRecord{
				{Level: slog.LevelInfo, Msg: "printed", Attrs: map[string]string{"stream": "stdout"}},
				{Level: slog.LevelWarn, Msg: "err:printed", Attrs: map[string]string{"stream": "stderr"}},
			}},
		{name: "filter may not set the body", role: RoleFilter, in: op("body"), code: Retry,
			reason: "body_set called from wr_filter; only wr_transform may call it", body: str(`{"amount":5}`)},
		{name: "filter may not set the routing key", role: RoleFilter, in: op("rk", "value", "x"), code: Retry,
			reason: "routing_key_set called from wr_filter"},
		{name: "handler may not set headers", role: RoleHandler, in: op("hset", "name", "x-new", "value", "v"), code: Retry,
			reason: "header_set called from wr_handle"},
		{name: "transform may not emit", role: RoleTransform, in: op("emit", "target", "out", "key", "k"), code: Retry,
			reason: "emit called from wr_transform"},
		{name: "hash", role: RoleTransform, in: op("hash"), code: Continue,
			headers: map[string]any{"len": "12", "fnv": "e24a2f06d1ead62e"}},
	}
}

func TestConformance(t *testing.T) {
	guests := map[string]string{"go": goGuest("conformance"), "c": cGuest("conformance")}
	for lang, path := range guests {
		t.Run(lang, func(t *testing.T) {
			h := newHost(t)
			m := h.load(t, ModuleConfig{Name: "conf-" + lang, Path: path, Config: conformanceConfig,
				Roles: []Role{RoleFilter, RoleTransform, RoleHandler}})
			for _, c := range conformanceCases() {
				t.Run(c.name, func(t *testing.T) { runConfCase(t, h, m, c) })
			}
		})
	}
}

func runConfCase(t *testing.T, h *testHost, m *Module, c confCase) {
	origKey := c.in.Event.RoutingKey
	out := m.Call(context.Background(), c.role, c.in)
	if out.Code != c.code {
		t.Errorf("code = %v (reason %q), want %v", out.Code, out.Reason, c.code)
	}
	if c.reason == "" && out.Reason != "" {
		t.Errorf("reason = %q, want none", out.Reason)
	}
	if !strings.Contains(out.Reason, c.reason) {
		t.Errorf("reason = %q, want it to contain %q", out.Reason, c.reason)
	}
	for k, want := range c.headers {
		if got, ok := c.in.Event.Headers[k]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("header %q = %#v, want %#v", k, got, want)
		}
	}
	if c.body != nil && string(c.in.Event.Body) != *c.body {
		t.Errorf("body = %q, want %q", c.in.Event.Body, *c.body)
	}
	wantKey := c.key
	if wantKey == "" {
		wantKey = origKey
	}
	if c.in.Event.RoutingKey != wantKey {
		t.Errorf("routing key = %q, want %q", c.in.Event.RoutingKey, wantKey)
	}
	if !reflect.DeepEqual(out.Emits, c.emits) {
		t.Errorf("emits = %+v, want %+v", out.Emits, c.emits)
	}
	for _, want := range c.logs {
		if !hasLog(h.logs.find(want.Msg), want, m.Name()) {
			t.Errorf("no log record %+v for module %s; have %+v", want, m.Name(), h.logs.find(want.Msg))
		}
	}
}

func hasLog(recs []logRecord, want logRecord, module string) bool {
	for _, r := range recs {
		if r.Level != want.Level || r.Attrs["module"] != module {
			continue
		}
		ok := true
		for k, v := range want.Attrs {
			ok = ok && r.Attrs[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}
