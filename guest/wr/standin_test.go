//go:build !wasip1

package wr

import (
	"reflect"
	"testing"
)

// The stand-in host answers the SDK's calls as the router does: getters, setters, emits with
// headers, config defaults, errors and logs.
func TestStandInHost(t *testing.T) {
	h := NewTestHost()
	h.Config["min"] = "100"
	h.Headers["tenant"] = "acme"
	h.Targets = []string{"items"}
	h.Use(t)

	if got := ConfigOr("min", "1"); got != "100" {
		t.Errorf("ConfigOr(min) = %q", got)
	}
	if got := ConfigOr("field", "amount"); got != "amount" {
		t.Errorf("ConfigOr(field) = %q, want the default", got)
	}
	if v, ok := Meta("routing_key"); !ok || v != "test" {
		t.Errorf("Meta(routing_key) = %q %v", v, ok)
	}
	if _, ok := Header("missing"); ok {
		t.Error("a missing header is present")
	}
	long := string(make([]byte, 1000)) // longer than the scratch buffer's first try
	h.Headers["long"] = long
	if v, ok := Header("long"); !ok || v != long {
		t.Errorf("Header(long): %d bytes, %v", len(v), ok)
	}

	SetBody([]byte("new"))
	SetRoutingKey("k.2")
	SetHeader("x", "1")
	if string(h.Body) != "new" || h.RoutingKey != "k.2" || h.SetHeaders["x"] != "1" {
		t.Errorf("setters: %q %q %v", h.Body, h.RoutingKey, h.SetHeaders)
	}
	if v, _ := Meta("routing_key"); v != "k.2" {
		t.Errorf("routing key after SetRoutingKey = %q", v)
	}

	if !EmitWith("items", "i.1", []byte("a"), WithOriginalHeaders(), WithHeader("n", "1")) ||
		!Emit("items", "i.2", []byte("b")) || Emit("nope", "k", nil) {
		t.Error("emit results wrong")
	}
	want := []Emitted{
		{"items", "i.1", []byte("a"), map[string]string{"tenant": "acme", "long": long, "x": "1", "n": "1"}},
		{"items", "i.2", []byte("b"), nil},
	}
	if !reflect.DeepEqual(h.Emitted, want) {
		t.Errorf("emitted %+v", h.Emitted)
	}
	if r := Fail(DeadLetter, "no amount"); r != DeadLetter || h.Error != "no amount" {
		t.Errorf("Fail: %v %q", r, h.Error)
	}
	Log(LevelInfo, "hello")
	if !reflect.DeepEqual(h.Logs, []LogLine{{LevelInfo, "hello"}}) {
		t.Errorf("logs %+v", h.Logs)
	}
}
