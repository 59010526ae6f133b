package wasmhost

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestGuestWritesAreChecked: header names the router could not publish (empty, over 255
// bytes), the router's own x-router-* headers, too many headers and a body over
// max_message_size fail the call (retry, then dead letter) instead of reaching the publish.
func TestGuestWritesAreChecked(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), Roles: []Role{RoleTransform}, MaxMessageSize: 1 << 20})
	cases := []struct {
		op     string
		extra  []string
		reason string
	}{
		{"long_header", nil, "header name of 256 bytes exceeds 255"},
		{"empty_header", nil, "empty header name"},
		{"router_header", nil, `header "X-Router-Error" is reserved`},
		{"header_flood", []string{"n", "300"}, "more than 256 headers"},
		{"body_set", []string{"size", "2000000"}, "exceeds max_message_size"},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			in := op(c.op, c.extra...)
			out := m.Call(context.Background(), RoleTransform, in)
			if out.Code != Retry || !strings.Contains(out.Reason, c.reason) {
				t.Fatalf("outcome %v %q, want retry with %q", out.Code, out.Reason, c.reason)
			}
			for name := range in.Event.Headers {
				if len(name) > 255 || name == "" || strings.HasPrefix(strings.ToLower(name), "x-router-") {
					t.Errorf("header %.40q was set", name)
				}
			}
		})
	}
	// Within the limits, the same calls succeed.
	if out := m.Call(context.Background(), RoleTransform, op("header_flood", "n", "200")); out.Code != Continue {
		t.Errorf("200 headers: %v %q", out.Code, out.Reason)
	}
	if out := m.Call(context.Background(), RoleTransform, op("body_set", "size", "1000000")); out.Code != Continue {
		t.Errorf("a 1 MB body: %v %q", out.Code, out.Reason)
	}
}

// TestHostCallsCountTowardTheDeadline: a handler emitting 1 MiB bodies in an endless loop,
// and a guest logging in an endless loop, spend their time in host functions; the call still
// ends at its timeout, and emitted bodies do not pile up in host memory.
func TestHostCallsCountTowardTheDeadline(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), Roles: []Role{RoleHandler}, Timeout: 50 * time.Millisecond, MaxMemory: 16 << 20})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, c := range []*Invocation{op("emit_flood", "size", "1048576"), op("log_flood")} {
		start := time.Now()
		out := m.Call(context.Background(), RoleHandler, c)
		if out.Code != Retry || out.Reason != "timeout after 50ms" {
			t.Errorf("%s: outcome %v %q, want a timeout", c.Event.Headers["op"], out.Code, out.Reason)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s ran for %v under a 50ms timeout", c.Event.Headers["op"], d)
		}
		if len(out.Emits) != 0 {
			t.Errorf("a timed-out call returned %d emits", len(out.Emits))
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.TotalAlloc) - int64(before.TotalAlloc); grown > 512<<20 {
		t.Errorf("the calls allocated %d MiB in the host", grown>>20)
	}
}

// TestEmitsAreCapped: a handler may emit at most max_message_size bytes and 1024 events in
// one call; past either the call fails.
func TestEmitsAreCapped(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), Roles: []Role{RoleHandler}, MaxMessageSize: 4 << 20, Timeout: 10 * time.Second})
	out := m.Call(context.Background(), RoleHandler, op("emit_flood", "size", "1048576", "n", "5"))
	if out.Code != Retry || !strings.Contains(out.Reason, "more than max_message_size") {
		t.Errorf("5 MiB emitted: %v %q", out.Code, out.Reason)
	}
	out = m.Call(context.Background(), RoleHandler, op("emit_flood", "size", "1", "n", "1025"))
	if out.Code != Retry || !strings.Contains(out.Reason, "more than 1024 events") {
		t.Errorf("1025 emits: %v %q", out.Code, out.Reason)
	}
	out = m.Call(context.Background(), RoleHandler, op("emit_flood", "size", "1048576", "n", "4"))
	if out.Code != Continue || len(out.Emits) != 4 {
		t.Errorf("4 MiB in 4 emits: %v %q, %d emits", out.Code, out.Reason, len(out.Emits))
	}
}
