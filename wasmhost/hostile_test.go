package wasmhost

import (
	"context"
	"hash/fnv"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Guests that misbehave: each failure must come back as an outcome, and the module must keep
// serving afterwards.

func (h *testHost) calls(module, result string) float64 {
	return testutil.ToFloat64(h.met.WasmCalls.WithLabelValues(module, result))
}

func (h *testHost) created(module, reason string) float64 {
	return testutil.ToFloat64(h.met.WasmInstances.WithLabelValues(module, reason))
}

// expectFresh checks that the next call runs on a new instance (its call counter starts at 1).
func expectFresh(t *testing.T, m *Module) {
	t.Helper()
	if out := m.Call(context.Background(), RoleFilter, op("calls")); out.Code != Continue {
		t.Errorf("next call: %v %q, want a fresh instance", out.Code, out.Reason)
	}
}

func TestTimeout(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), Timeout: 100 * time.Millisecond})
	start := time.Now()
	out := m.Call(context.Background(), RoleFilter, op("loop"))
	if out.Code != Retry || out.Reason != "timeout after 100ms" {
		t.Fatalf("outcome %v %q, want retry after a timeout", out.Code, out.Reason)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the loop ran for %v", d)
	}
	expectFresh(t, m)
	if got := h.calls("hostile", "timeout"); got != 1 {
		t.Errorf("timeout calls = %v, want 1", got)
	}
	if got := h.created("hostile", "timeout"); got != 1 {
		t.Errorf("instances created after a timeout = %v, want 1", got)
	}
}

// TestTimeoutShapes covers code the interrupt check must reach by other paths: a Go loop
// (branches through Go's dispatch loop) and recursion without any loop.
func TestTimeoutShapes(t *testing.T) {
	for _, c := range []struct {
		name, path, op string
	}{
		{"go loop", goGuest("spin"), "x"},
		{"c recursion", cGuest("hostile"), "fib"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t)
			m := h.load(t, ModuleConfig{Path: c.path, Timeout: 100 * time.Millisecond})
			start := time.Now()
			if out := m.Call(context.Background(), RoleFilter, op(c.op)); out.Code != Retry || out.Reason != "timeout after 100ms" {
				t.Fatalf("outcome %v %q", out.Code, out.Reason)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("stopped after %v", d)
			}
			in := op("ok")
			in.Event.Body = nil // spin returns at once on an empty body
			if out := m.Call(context.Background(), RoleFilter, in); out.Code != Continue {
				t.Errorf("next call: %v %q", out.Code, out.Reason)
			}
		})
	}
}

// TestSpinningGuestDoesNotBlockGC: a goroutine in compiled guest code cannot be preempted, so
// without the interrupt check a garbage collection (which stops every goroutine) would wait for
// the guest, and so would the whole process.
func TestSpinningGuestDoesNotBlockGC(t *testing.T) {
	h := newHost(t)
	goSpin := h.load(t, ModuleConfig{Path: goGuest("spin"), Timeout: 5 * time.Second})
	cLoop := h.load(t, ModuleConfig{Path: cGuest("hostile"), Timeout: 5 * time.Second})
	done := make(chan Outcome, 2)
	go func() { done <- goSpin.Call(context.Background(), RoleFilter, op("x")) }()
	go func() { done <- cLoop.Call(context.Background(), RoleFilter, op("loop")) }()
	waitFor(t, "both guests to run", func() bool { return len(goSpin.pool) == 0 && len(cLoop.pool) == 0 })
	runtime.GC()
	// A collection that had to wait for the spinning guests would end only after their
	// deadline: both would have returned by now.
	if n := len(done); n != 0 {
		t.Errorf("the collection ended after %d spinning guest(s) had timed out: it waited for them", n)
	}
	for range 2 {
		if out := <-done; out.Reason != "timeout after 5s" {
			t.Errorf("spinning call: %v %q", out.Code, out.Reason)
		}
	}
}

func TestTrap(t *testing.T) {
	for _, c := range []struct{ op, reason string }{
		{"trap", "trap: wasm error: unreachable"},
		{"exit", "trap: module closed with exit_code(3)"},
		{"recurse", "trap: wasm error: out of bounds memory access"}, // C's stack is in linear memory
	} {
		t.Run(c.op, func(t *testing.T) {
			h := newHost(t)
			m := h.load(t, ModuleConfig{Path: cGuest("hostile")})
			out := m.Call(context.Background(), RoleFilter, op(c.op))
			if out.Code != Retry || !strings.HasPrefix(out.Reason, c.reason) {
				t.Fatalf("outcome %v %q, want retry %q", out.Code, out.Reason, c.reason)
			}
			expectFresh(t, m)
			if h.calls("hostile", "trap") != 1 || h.created("hostile", "trap") != 1 {
				t.Errorf("trap calls %v, instances created after a trap %v; want 1 and 1",
					h.calls("hostile", "trap"), h.created("hostile", "trap"))
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	const limit = 4 << 20
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), MaxMemory: limit})
	ctx := context.Background()

	// Growing until refused: the guest sees memory.grow fail at the limit and traps.
	out := m.Call(ctx, RoleFilter, op("bomb"))
	if out.Code != Retry || !strings.HasPrefix(out.Reason, "trap:") {
		t.Fatalf("bomb: %v %q, want a trap", out.Code, out.Reason)
	}
	// One growth beyond the limit is refused outright.
	out = m.Call(ctx, RoleFilter, op("bloat", "pages", "100"))
	if out.Code != DeadLetter || !strings.HasPrefix(out.Reason, "grow refused; ") || !strings.Contains(out.Reason, "max_memory") {
		t.Fatalf("bloat past the limit: %v %q, want the guest to see the growth refused and max_memory named", out.Code, out.Reason)
	}
	// Growing past half the limit works but the instance is replaced afterwards.
	before := h.created("hostile", "memory")
	out = m.Call(ctx, RoleFilter, op("bloat", "pages", "40"))
	if out.Code != Continue {
		t.Fatalf("bloat within the limit: %v %q", out.Code, out.Reason)
	}
	expectFresh(t, m)
	if got := h.created("hostile", "memory"); got != before+1 {
		t.Errorf("instances created for memory = %v, want %v", got, before+1)
	}
	// The fresh instance is small again, and never was above the limit.
	in := op("pages")
	if out = m.Call(ctx, RoleTransform, in); out.Code != Continue {
		t.Fatalf("pages: %v %q", out.Code, out.Reason)
	}
	pages, err := strconv.Atoi(in.Event.Headers["pages"].(string))
	if err != nil || pages*pageSize > limit/2 {
		t.Errorf("memory after recycling: %v pages (%v)", pages, err)
	}
}

func TestBadPointers(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile")})
	for _, c := range []struct {
		op     string
		role   Role
		reason string
	}{
		{"bad_name", RoleFilter, "meta_get: name (ptr 4294967040, len 1000) outside guest memory"},
		{"neg_name_len", RoleFilter, "meta_get: negative name length -5"},
		{"huge_name_len", RoleFilter, "header_get: name (ptr"},
		{"bad_buf", RoleFilter, "meta_get: buffer (ptr 4294967040, len 13) outside guest memory"},
		{"neg_cap", RoleFilter, "config_get: negative buffer capacity -1"},
		{"bad_body", RoleTransform, "body_set: body (ptr 16, len 2147483647) outside guest memory"},
		{"neg_body", RoleTransform, "body_set: negative body length -1"},
		{"bad_key", RoleTransform, "routing_key_set: routing key (ptr 4294967040, len 300) outside guest memory"},
		{"bad_header_set", RoleTransform, "header_set: negative value length -2"},
		{"bad_emit", RoleHandler, "emit: body (ptr 4294967040, len 4096) outside guest memory"},
		{"bad_error", RoleFilter, "error_set: reason (ptr 4294967040, len 2147483647) outside guest memory"},
		{"bad_log", RoleFilter, "log: message (ptr 4294967040, len 10) outside guest memory"},
		{"long_key", RoleTransform, "routing_key_set: routing key of 300 bytes exceeds 255"},
	} {
		t.Run(c.op, func(t *testing.T) {
			in := op(c.op)
			out := m.Call(context.Background(), c.role, in)
			if out.Code != Retry || !strings.HasPrefix(out.Reason, c.reason) {
				t.Errorf("outcome %v %q, want retry %q", out.Code, out.Reason, c.reason)
			}
			if string(in.Event.Body) != `{"amount":5}` || in.Event.RoutingKey != "order.created" {
				t.Errorf("event changed: %q %q", in.Event.Body, in.Event.RoutingKey)
			}
		})
	}
	// ABI misuse does not cost the instance.
	if got := h.created("hostile", "start"); got != 1 {
		t.Errorf("instances = %v", got)
	}
	if out := m.Call(context.Background(), RoleFilter, op("ok")); out.Code != Continue {
		t.Errorf("after bad pointers: %v %q", out.Code, out.Reason)
	}
}

func TestSandbox(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile")})
	for _, name := range []string{"file", "env", "socket", "stdin"} {
		t.Run(name, func(t *testing.T) {
			if out := m.Call(context.Background(), RoleFilter, op(name)); out.Code != Continue {
				t.Errorf("%v %q: the guest got out of its sandbox", out.Code, out.Reason)
			}
		})
	}
}

func TestBadBuffer(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("bad_badbuffer"), Roles: []Role{RoleFilter}})
	for range 2 {
		out := m.Call(context.Background(), RoleFilter, op("ok"))
		if out.Code != Retry || !strings.HasPrefix(out.Reason, "wr_buffer(1024) returned 4294901760, outside guest memory") {
			t.Fatalf("outcome %v %q", out.Code, out.Reason)
		}
	}
	if got := h.created("bad_badbuffer", "error"); got < 1 {
		t.Errorf("instance not replaced after wr_buffer failed")
	}
}

func TestHugeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of MiB")
	}
	body := make([]byte, 16<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>10)
	}
	sum := fnv.New64a()
	sum.Write(body)
	wantSum := strconv.FormatUint(sum.Sum64(), 16)

	for _, g := range []struct {
		lang, path string
		nearLimit  Code // a 63 MiB body under a 64 MiB limit
	}{
		// C allocates exactly the body; Go's heap needs more than the limit leaves.
		{"c", cGuest("conformance"), Continue},
		{"go", goGuest("conformance"), Retry},
	} {
		lang, path := g.lang, g.path
		t.Run(lang, func(t *testing.T) {
			h := newHost(t)
			// Hashing 63 MiB is the guest's honest work: the deadline only has to stop a hang.
			m := h.load(t, ModuleConfig{Path: path, MaxMemory: 64 << 20, Timeout: time.Minute})
			in := op("hash")
			in.Event.Body = body
			out := m.Call(context.Background(), RoleTransform, in)
			if out.Code != Continue {
				t.Fatalf("16 MiB body: %v %q", out.Code, out.Reason)
			}
			if in.Event.Headers["len"] != "16777216" || strings.TrimLeft(in.Event.Headers["fnv"].(string), "0") != wantSum {
				t.Errorf("guest saw len %v fnv %v, want 16777216 %s", in.Event.Headers["len"], in.Event.Headers["fnv"], wantSum)
			}

			in = op("hash")
			in.Event.Body = make([]byte, 65<<20)
			out = m.Call(context.Background(), RoleTransform, in)
			if out.Code != Retry || out.Reason != "body of 68157440 bytes exceeds max_memory" {
				t.Errorf("65 MiB body: %v %q", out.Code, out.Reason)
			}
			in = op("hash")
			in.Event.Body = make([]byte, 63<<20)
			if out = m.Call(context.Background(), RoleTransform, in); out.Code != g.nearLimit {
				t.Errorf("63 MiB body: %v %q, want %v", out.Code, out.Reason, g.nearLimit)
			}
			t.Logf("63 MiB body under a 64 MiB limit: %v %q", out.Code, out.Reason)
			if out = m.Call(context.Background(), RoleTransform, op("hash")); out.Code != Continue {
				t.Errorf("after huge bodies: %v %q", out.Code, out.Reason)
			}
		})
	}
}

// TestFailureReasons: the reason of a failed call carries what the guest said (a Go panic's
// text, error_set before a trap) and names max_memory when the guest ran out of memory; the
// log gets one record per failure, the panic's stack folded into it.
func TestFailureReasons(t *testing.T) {
	h := newHost(t)
	goMod := h.load(t, ModuleConfig{Path: goGuest("conformance"), MaxMemory: 16 << 20,
		Roles: []Role{RoleFilter}})
	out := goMod.Call(context.Background(), RoleFilter, op("panic", "msg", "no amount"))
	if out.Code != Retry || !strings.HasPrefix(out.Reason, "panic: conformance: no amount (trap: ") {
		t.Errorf("panic: %v %q, want retry with the panic text first", out.Code, out.Reason)
	}
	recs := h.logs.find("guest call failed")
	if len(recs) != 1 || !strings.Contains(recs[0].Attrs["stderr"], "goroutine") || recs[0].Attrs["result"] != "trap" {
		t.Errorf("log records for the panic: %+v, want one with the stack folded in", recs)
	}
	for _, r := range h.logs.all() {
		if r.Attrs["stream"] == "stderr" {
			t.Errorf("a panic line logged on its own: %+v", r)
		}
	}

	out = goMod.Call(context.Background(), RoleFilter, op("oom"))
	if out.Code != Retry || !strings.Contains(out.Reason, `max_memory = "16MiB"`) {
		t.Errorf("oom: %v %q, want retry naming max_memory", out.Code, out.Reason)
	}
	if out := goMod.Call(context.Background(), RoleFilter, op("return", "code", "0")); out.Code != Continue {
		t.Errorf("after the failures: %v %q, want a fresh instance serving", out.Code, out.Reason)
	}

	cMod := h.load(t, ModuleConfig{Path: cGuest("hostile"), MaxMemory: 4 << 20})
	out = cMod.Call(context.Background(), RoleFilter, op("bomb"))
	if !strings.Contains(out.Reason, `max_memory = "4MiB"`) {
		t.Errorf("c bomb: %v %q, want the reason to name max_memory", out.Code, out.Reason)
	}
}
