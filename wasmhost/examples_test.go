package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
)

// The example guests of examples/wasm, run through the real host.

func exampleEvent(body string, headers event.Table) *Invocation {
	ev := testEvent()
	ev.Body = []byte(body)
	ev.Headers = headers
	return &Invocation{Event: ev, Route: "r", KnownTarget: func(n string) bool { return n == "items" }}
}

func TestExampleThreshold(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: goGuest("threshold"), Config: map[string]string{"min": "100"}, Roles: []Role{RoleFilter}})
	nested := h.load(t, ModuleConfig{Name: "nested", Path: goGuest("threshold"),
		Config: map[string]string{"min": "-1.5", "field": "order.total"}})
	for _, c := range []struct {
		m      *Module
		body   string
		code   Code
		reason string
	}{
		{m, `{"amount":150}`, Continue, ""},
		{m, `{"amount":100}`, Continue, ""},
		{m, `{"amount":99.99}`, Drop, ""},
		{m, `{"id":"x","amount":1e3,"tags":["a"]}`, Continue, ""},
		{m, `{"other":1}`, DeadLetter, `threshold: field "amount" is missing`},
		{m, `{"amount":"150"}`, DeadLetter, `threshold: field "amount" is not a number`},
		{m, `not json`, DeadLetter, `threshold: field "amount" is missing`},
		{nested, `{"order":{"total":-1}}`, Continue, ""},
		{nested, `{"order":{"total":-2}}`, Drop, ""},
		{nested, `{"total":5}`, DeadLetter, `threshold: field "order.total" is missing`},
	} {
		out := c.m.Call(context.Background(), RoleFilter, exampleEvent(c.body, nil))
		if out.Code != c.code || out.Reason != c.reason {
			t.Errorf("%s on %s: %v %q, want %v %q", c.m.Name(), c.body, out.Code, out.Reason, c.code, c.reason)
		}
	}
	for cfg, want := range map[string]string{
		"":    `config "min" is required`,
		"abc": `config "min": "abc" is not a number`,
	} {
		conf := map[string]string{"min": cfg}
		if cfg == "" {
			conf = nil
		}
		_, err := h.Load(context.Background(), ModuleConfig{Name: "t", Path: goGuest("threshold"), Config: conf, PoolSize: 1})
		if !errors.Is(err, ErrInstantiate) || !strings.Contains(err.Error(), "(guest error: threshold: "+want+")") {
			t.Errorf("config %q: %v", cfg, err)
		}
	}
}

func TestExampleRedact(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: goGuest("redact"), Roles: []Role{RoleTransform},
		Config: map[string]string{"fields": "email, customer.email,customer.phone,absent"}})
	in := exampleEvent(`{"email":"a@b.c","customer":{"email":"x@y.z","name":"Ann","phone":null},"amount":3}`, nil)
	out := m.Call(context.Background(), RoleTransform, in)
	if out.Code != Continue {
		t.Fatalf("%v %q", out.Code, out.Reason)
	}
	var got map[string]any
	if err := json.Unmarshal(in.Event.Body, &got); err != nil {
		t.Fatalf("redacted body is not JSON: %q", in.Event.Body)
	}
	want := map[string]any{"email": "***", "customer": map[string]any{"email": "***", "name": "Ann", "phone": "***"}, "amount": 3.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %s", in.Event.Body)
	}
	if in.Event.Headers["x-redacted"] != "3" {
		t.Errorf("headers %v", in.Event.Headers)
	}

	in = exampleEvent(`{"id":1}`, event.Table{"keep": int32(1)})
	if out = m.Call(context.Background(), RoleTransform, in); out.Code != Continue ||
		string(in.Event.Body) != `{"id":1}` || in.Event.Headers["x-redacted"] != "0" || in.Event.Headers["keep"] != int32(1) {
		t.Errorf("nothing to redact: %v %q %v", out.Code, in.Event.Body, in.Event.Headers)
	}
	in = exampleEvent(`email=a@b.c`, nil)
	if out = m.Call(context.Background(), RoleTransform, in); out.Code != DeadLetter || string(in.Event.Body) != `email=a@b.c` {
		t.Errorf("not JSON: %v %q", out.Code, out.Reason)
	}
}

func TestExampleSplitter(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: goGuest("splitter"), Roles: []Role{RoleHandler}, Config: map[string]string{"target": "items"}})
	fixed := h.load(t, ModuleConfig{Name: "fixed", Path: goGuest("splitter"),
		Config: map[string]string{"target": "items", "field": "order.lines", "routing_key": "line"}})
	lost := h.load(t, ModuleConfig{Name: "lost", Path: goGuest("splitter"), Config: map[string]string{"target": "nowhere"}})

	out := m.Call(context.Background(), RoleHandler, exampleEvent(`{"items":[{"sku":"a"}, 2 ,"x\"y",[1,2]]}`, nil))
	key := "order.created.item"
	want := []Emit{{"items", key, []byte(`{"sku":"a"}`)}, {"items", key, []byte(`2`)}, {"items", key, []byte(`"x\"y"`)},
		{"items", key, []byte(`[1,2]`)}}
	if out.Code != Continue || !reflect.DeepEqual(out.Emits, want) {
		t.Errorf("split: %v %q %q", out.Code, out.Reason, out.Emits)
	}
	out = fixed.Call(context.Background(), RoleHandler, exampleEvent(`{"order":{"lines":[true]}}`, nil))
	if out.Code != Continue || !reflect.DeepEqual(out.Emits, []Emit{{"items", "line", []byte("true")}}) {
		t.Errorf("fixed key: %v %q %q", out.Code, out.Reason, out.Emits)
	}
	out = m.Call(context.Background(), RoleHandler, exampleEvent(`{"items":[]}`, nil))
	if out.Code != Continue || len(out.Emits) != 0 {
		t.Errorf("empty array: %v %q %q", out.Code, out.Reason, out.Emits)
	}
	out = m.Call(context.Background(), RoleHandler, exampleEvent(`{"items":{}}`, nil))
	if out.Code != DeadLetter || out.Reason != `splitter: field "items" is not an array` {
		t.Errorf("no array: %v %q", out.Code, out.Reason)
	}
	out = lost.Call(context.Background(), RoleHandler, exampleEvent(`{"items":[1]}`, nil))
	if out.Code != DeadLetter || out.Reason != `splitter: unknown target "nowhere"` || len(out.Emits) != 0 {
		t.Errorf("unknown target: %v %q %q", out.Code, out.Reason, out.Emits)
	}
}

func TestExampleKeyfilter(t *testing.T) {
	path := filepath.Join("..", "examples", "wasm", "keyfilter", "keyfilter.wasm")
	h := newHost(t)
	byHeader := h.load(t, ModuleConfig{Name: "h", Path: path, Config: map[string]string{"header": "tenant", "value": "acme"}})
	byNumber := h.load(t, ModuleConfig{Name: "n", Path: path, Config: map[string]string{"header": "n", "value": "5"}})
	byPrefix := h.load(t, ModuleConfig{Name: "p", Path: path, Config: map[string]string{"prefix": "order."}})
	both := h.load(t, ModuleConfig{Name: "b", Path: path, Config: map[string]string{"prefix": "order.", "header": "tenant", "value": "acme"}})
	for _, c := range []struct {
		m       *Module
		key     string
		headers event.Table
		code    Code
	}{
		{byHeader, "x", event.Table{"tenant": "acme"}, Continue},
		{byHeader, "x", event.Table{"tenant": "acme2"}, Drop},
		{byHeader, "x", event.Table{"tenant": "acm"}, Drop},
		{byHeader, "x", event.Table{"tenant": []byte("acme")}, Continue},
		{byHeader, "x", nil, Drop},
		{byNumber, "x", event.Table{"n": int32(5)}, Continue},
		{byNumber, "x", event.Table{"n": int64(50)}, Drop},
		{byPrefix, "order.created", nil, Continue},
		{byPrefix, "order.", nil, Continue},
		{byPrefix, "order", nil, Drop},
		{byPrefix, "payment.order.x", nil, Drop},
		{both, "order.x", event.Table{"tenant": "acme"}, Continue},
		{both, "order.x", event.Table{"tenant": "other"}, Drop},
		{both, "orders", event.Table{"tenant": "acme"}, Drop},
	} {
		in := exampleEvent("{}", c.headers)
		in.Event.RoutingKey = c.key
		if out := c.m.Call(context.Background(), RoleFilter, in); out.Code != c.code || out.Reason != "" {
			t.Errorf("%s on %q %v: %v %q, want %v", c.m.Name(), c.key, c.headers, out.Code, out.Reason, c.code)
		}
	}
	for _, conf := range []map[string]string{nil, {"header": "x"}, {"prefix": strings.Repeat("p", 256)}} {
		_, err := h.Load(context.Background(), ModuleConfig{Name: "k", Path: path, Config: conf, PoolSize: 1})
		if !errors.Is(err, ErrInstantiate) || !strings.Contains(err.Error(), "(guest error: keyfilter: config") {
			t.Errorf("config %v: %v", conf, err)
		}
	}
}
