package wasmhost

import (
	"bytes"
	"context"
	"testing"
)

// A transform given a copy that shares the original's body (event.Event.CloneSharingBody, what
// a route passes) replaces the copy's body and headers and leaves the original's as they were:
// the host never writes into a body.
func TestTransformOnACopySharingTheBodyLeavesTheOriginal(t *testing.T) {
	h := newHost(t)
	for _, path := range []string{goGuest("conformance"), cGuest("conformance")} {
		m := h.load(t, ModuleConfig{Path: path})
		for _, in := range []*Invocation{op("body"), op("hset", "name", "added", "value", "v")} {
			orig := in.Event
			body, headers := bytes.Clone(orig.Body), len(orig.Headers)
			in.Event = orig.CloneSharingBody()
			if out := m.Call(context.Background(), RoleTransform, in); out.Code != Continue {
				t.Fatalf("%s %s: %v %q", path, orig.Headers["op"], out.Code, out.Reason)
			}
			if !bytes.Equal(orig.Body, body) || len(orig.Headers) != headers {
				t.Fatalf("%s %s: the original changed: body %q (was %q), %d headers (was %d)",
					path, orig.Headers["op"], orig.Body, body, len(orig.Headers), headers)
			}
			switch orig.Headers["op"] {
			case "body":
				if want := "<" + string(body) + ">"; string(in.Event.Body) != want {
					t.Fatalf("%s: the copy's body is %q, want %q", path, in.Event.Body, want)
				}
			case "hset":
				if in.Event.Headers["added"] != "v" {
					t.Fatalf("%s: the copy's headers %v lack the one set", path, in.Event.Headers)
				}
			}
		}
	}
}
