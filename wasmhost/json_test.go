package wasmhost

import (
	"context"
	"strings"
	"testing"
)

// The JSON readers of both SDKs (guest/wr in Go, wasmrouter.h in C), run inside guests on the
// same cases.

// jsonBody has long runs, escapes and nesting across several eight-byte steps.
const jsonBody = `{"id":"o-1","note":"a \"quoted\" }] text\\","n":-2e3,"f":0.25,"t":true,"z":null,` +
	`"customer":{"email":"a@b.c","tags":["x","y]"],"deep":{"k":[1,{"v":7}]}},` +
	`"items":[{"sku":"a","name":"W \"1\""},{"sku":"b]}\\\\"},[],{}],"amount":150.5}`

func TestJSONInGuests(t *testing.T) {
	cases := []struct{ path, kind, raw, num string }{
		{"id", "string", `"o-1"`, ""},
		{"note", "string", `"a \"quoted\" }] text\\"`, ""},
		{"n", "number", `-2e3`, "-2000.000000"},
		{"f", "number", `0.25`, "0.250000"},
		{"t", "bool", `true`, ""},
		{"z", "null", `null`, ""},
		{"customer.email", "string", `"a@b.c"`, ""},
		{"customer.tags.1", "string", `"y]"`, ""},
		{"customer.deep.k.1.v", "number", `7`, "7.000000"},
		{"customer.deep", "object", `{"k":[1,{"v":7}]}`, ""},
		{"items.1.sku", "string", `"b]}\\\\"`, ""},
		{"items.2", "array", `[]`, ""},
		{"amount", "number", `150.5`, "150.500000"},
		{"nope", "invalid", "", ""},
		{"customer.tags.2", "invalid", "", ""},
		{"amount.x", "invalid", "", ""},
	}
	for lang, path := range map[string]string{"go": goGuest("conformance"), "c": cGuest("conformance")} {
		t.Run(lang, func(t *testing.T) {
			h := newHost(t)
			m := h.load(t, ModuleConfig{Path: path})
			for _, c := range cases {
				in := op("json", "path", c.path)
				in.Event.Body = []byte(jsonBody)
				if out := m.Call(context.Background(), RoleTransform, in); out.Code != Continue {
					t.Fatalf("%s: %v %q", c.path, out.Code, out.Reason)
				}
				hd := in.Event.Headers
				raw, _ := hd["raw"].(string)
				num, _ := hd["num"].(string)
				if hd["kind"] != c.kind || raw != c.raw || num != c.num {
					t.Errorf("%s: kind %v raw %q num %q, want %s %q %q", c.path, hd["kind"], raw, num, c.kind, c.raw, c.num)
				}
			}
			// A long document with the value at the end, and a truncated one.
			long := `{"pad":[` + strings.Repeat(`{"s":"x\\\"y","a":[1,2,{}]},`, 200) + `0],"amount":5}`
			for body, want := range map[string]string{long: "5", long[:len(long)-20]: ""} {
				in := op("json", "path", "amount")
				in.Event.Body = []byte(body)
				m.Call(context.Background(), RoleTransform, in)
				if raw, _ := in.Event.Headers["raw"].(string); raw != want {
					t.Errorf("long document: raw %q, want %q", raw, want)
				}
			}
		})
	}
}
