package wasmhost

import (
	"context"
	"strconv"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
)

// FuzzHostFunctionPointers has a guest call each host function with pointers and lengths the
// fuzzer picks: out of range, negative, huge, overlapping the buffers the host writes. The
// call may fail, but the host must neither panic nor touch memory it should not, and the
// module must keep serving.
func FuzzHostFunctionPointers(f *testing.F) {
	for _, seed := range [][7]int32{
		{0, 1024, 11, 2048, 64, 0, 0},           // meta_get, sane
		{0, -1, 11, 2048, 64, 0, 0},             // negative pointer
		{1, 1024, 0x7fffffff, 2048, 64, 0, 0},   // huge name length
		{2, 1024, 4, 1024, 4, 0, 0},             // buffer overlapping the name
		{3, 0, 0x7fffffff, 0, 0, 0, 0},          // body_set past memory
		{4, 1024, 300, 0, 0, 0, 0},              // routing key over 255 bytes
		{5, 1024, 4, 1022, -2, 0, 0},            // header_set, negative value length
		{6, 1024, 3, 1030, 3, -16, 0x1000},      // emit, body out of range
		{7, -256, 0x7fffffff, 0, 0, 0, 0},       // error_set near the top of the address space
		{8, 1024, 10, 2, 0, 0, 0},               // log
		{8, 1024, 10, -7, 0, 0, 0},              // log, unknown level
		{0, 65536 * 2, 1, 65536*2 - 1, 2, 0, 0}, // across the end of initial memory
		{1, 0, 0, 0, 0x7fffffff, 0, 0},          // empty name, huge capacity
		{5, 100, 1, 100, 1, 0, 0},               // name and value the same byte
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6])
	}
	h := newHost(f)
	m := h.load(f, ModuleConfig{Path: cGuest("hostile"), PoolSize: 1, Roles: []Role{RoleTransform, RoleHandler}})
	ctx := context.Background()
	known := func(name string) bool { return name == "out" }
	f.Fuzz(func(t *testing.T, fn, a, b, c, d, e, g int32) {
		role := RoleTransform
		if fn%9 == 6 {
			role = RoleHandler
		}
		headers := event.Table{"op": "raw", "fn": itoa(fn % 9), "a": itoa(a), "b": itoa(b), "c": itoa(c),
			"d": itoa(d), "e": itoa(e), "f": itoa(g), "x": "1"}
		ev := &event.Event{Seq: 1, RoutingKey: "k", Headers: headers, Body: []byte(`{"n":1}`)}
		out := m.Call(ctx, role, &Invocation{Event: ev, Route: "r", KnownTarget: known})
		if out.Code != Continue && out.Code != Retry {
			t.Fatalf("fn %d (%d %d %d %d %d %d): code %v (%s)", fn%9, a, b, c, d, e, g, out.Code, out.Reason)
		}
		if len(ev.RoutingKey) > event.MaxKeyLen {
			t.Fatalf("routing key of %d bytes accepted", len(ev.RoutingKey))
		}
		// The module still serves a plain call.
		ok := &event.Event{Seq: 2, RoutingKey: "k", Headers: event.Table{"op": "ok"}}
		if got := m.Call(ctx, RoleTransform, &Invocation{Event: ok, Route: "r", KnownTarget: known}); got.Code != Continue {
			t.Fatalf("after fn %d the module fails a plain call: %v (%s)", fn%9, got.Code, got.Reason)
		}
	})
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
