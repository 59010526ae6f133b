package wasmhost

import (
	"context"
	"testing"
)

// meta_get("trace_id"), an extension of ABI version 1: the router's trace id when it traces the
// event, else the one of the event's traceparent header.
func TestMetaTraceID(t *testing.T) {
	const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	h := newHost(t)
	m := h.load(t, ModuleConfig{Name: "conf-trace", Path: goGuest("conformance"), Config: conformanceConfig,
		Roles: []Role{RoleTransform}})
	cases := []struct {
		name    string
		header  any // the traceparent header; nil: none
		traceID string
		want    string
	}{
		{"from the router", traceparent, "4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"from the header", traceparent, "", "0af7651916cd43dd8448eb211c80319c"},
		{"from a byte-array header", []byte(traceparent), "", "0af7651916cd43dd8448eb211c80319c"},
		{"absent", nil, "", "<absent>"},
		{"malformed header", "00-0af7651916cd43dd8448eb211c80319c", "", "<absent>"},
		{"upper-case header", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "", "<absent>"},
		{"zero trace id", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "", "<absent>"},
		{"version ff", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "<absent>"},
		{"a later version with more fields", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", "", "0af7651916cd43dd8448eb211c80319c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := op("meta")
			if c.header != nil {
				in.Event.Headers["traceparent"] = c.header
			}
			in.TraceID = c.traceID
			out := m.Call(context.Background(), RoleTransform, in)
			if out.Code != Continue {
				t.Fatalf("code %v: %s", out.Code, out.Reason)
			}
			if got := in.Event.Headers["m.trace_id"]; got != c.want {
				t.Errorf("trace_id = %v, want %s", got, c.want)
			}
		})
	}
}
