package wr

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const doc = `{
  "id": "o-1", "amount": 150.5, "count": 3, "neg": -2e3, "ok": true, "off": false, "none": null,
  "customer": {"email": "a@b.c", "name": "Ann \"Q\" Lee", "tags": ["x", "y"], "deep": {"k": [1, {"v": 7}]}},
  "items": [{"sku": "a"}, {"sku": "b]}"}, [], {}],
  "we\u0069rd": 1, "esc\"aped": 2, "uni\u00e9": 3, "emoji\ud83d\ude00": 4,
  "str": "tab\tline\nquote\"slash\/u\u00e9\ud83d\ude00"
}`

func TestJSONGet(t *testing.T) {
	for _, c := range []struct {
		path string
		raw  string
		kind Kind
	}{
		{"id", `"o-1"`, String},
		{"amount", `150.5`, Number},
		{"neg", `-2e3`, Number},
		{"ok", `true`, Bool},
		{"none", `null`, Null},
		{"customer.email", `"a@b.c"`, String},
		{"customer.name", `"Ann \"Q\" Lee"`, String},
		{"customer.tags", `["x", "y"]`, Array},
		{"customer.tags.1", `"y"`, String},
		{"customer.deep.k.1.v", `7`, Number},
		{"customer.deep", `{"k": [1, {"v": 7}]}`, Object},
		{"items.1.sku", `"b]}"`, String},
		{"items.2", `[]`, Array},
		{"items.3", `{}`, Object},
		{"weird", `1`, Number},    // key with an escape
		{`esc"aped`, `2`, Number}, // escaped quote in a key
		{"unié", `3`, Number},     // \u escape in a key
		{"emoji😀", `4`, Number},   // surrogate pair in a key
		{"str", `"tab\tline\nquote\"slash\/u\u00e9\ud83d\ude00"`, String},
	} {
		raw, kind, ok := JSONGet([]byte(doc), c.path)
		if !ok || string(raw) != c.raw || kind != c.kind {
			t.Errorf("JSONGet(%q) = %q %v %v, want %q %v", c.path, raw, kind, ok, c.raw, c.kind)
		}
	}
	for _, path := range []string{"nope", "customer.nope", "customer.tags.2", "customer.tags.x", "items.01x",
		"amount.x", "id.0", "", "customer.", ".id", "items.99999999999"} {
		if raw, _, ok := JSONGet([]byte(doc), path); ok {
			t.Errorf("JSONGet(%q) found %q", path, raw)
		}
	}
}

func TestJSONMalformed(t *testing.T) {
	for _, body := range []string{``, `   `, `[`, `{`, `{"a"`, `{"a":`, `{"a" 1}`, `{"b":1 "a":2}`, `{"b":"x`,
		`{"b":{"c":1}`, `"a"`, `{"b":tru,"a":1}`, `{"b":"\`, `{a:1}`} {
		if raw, _, ok := JSONGet([]byte(body), "a"); ok {
			t.Errorf("JSONGet(%q, a) found %q", body, raw)
		}
	}
	// Skipped values are only checked for balance: damage inside them goes unnoticed.
	for _, body := range []string{`{"b":[1,2}, "a": 1}`, `{"b":[1 2],"a":1}`} {
		if raw, _, ok := JSONGet([]byte(body), "a"); !ok || string(raw) != "1" {
			t.Errorf("JSONGet(%q, a) = %q %v", body, raw, ok)
		}
	}
	if _, ok := JSONNumber([]byte(`{"a":01}`), "a"); ok {
		t.Error("leading zero accepted")
	}
	if _, ok := JSONNumber([]byte(`{"a":1.}`), "a"); ok {
		t.Error("1. accepted")
	}
	if _, ok := JSONNumber([]byte(`{"a":-}`), "a"); ok {
		t.Error("- accepted")
	}
}

func TestJSONScalars(t *testing.T) {
	body := []byte(doc)
	if v, ok := JSONNumber(body, "amount"); !ok || v != 150.5 {
		t.Errorf("amount %v %v", v, ok)
	}
	if v, ok := JSONNumber(body, "neg"); !ok || v != -2000 {
		t.Errorf("neg %v %v", v, ok)
	}
	if _, ok := JSONNumber(body, "id"); ok {
		t.Error("a string read as a number")
	}
	if v, ok := JSONInt(body, "count"); !ok || v != 3 {
		t.Errorf("count %v %v", v, ok)
	}
	if _, ok := JSONInt(body, "amount"); ok {
		t.Error("150.5 read as an integer")
	}
	if v, ok := JSONInt([]byte(`{"n":-9223372036854775808}`), "n"); !ok || v != math.MinInt64 {
		t.Errorf("min int64 %v %v", v, ok)
	}
	if v, ok := JSONBool(body, "ok"); !ok || !v {
		t.Errorf("ok %v %v", v, ok)
	}
	if v, ok := JSONBool(body, "off"); !ok || v {
		t.Errorf("off %v %v", v, ok)
	}
	if _, ok := JSONBool(body, "none"); ok {
		t.Error("null read as a bool")
	}
	if v, ok := JSONString(body, "customer.email"); !ok || string(v) != "a@b.c" {
		t.Errorf("email %q %v", v, ok)
	}
	if v, ok := JSONString(body, "str"); !ok || string(v) != "tab\tline\nquote\"slash/u\u00e9\U0001F600" {
		t.Errorf("str %q %v", v, ok)
	}
	if _, ok := JSONString(body, "count"); ok {
		t.Error("a number read as a string")
	}
	if v, ok := JSONUnquote(nil, []byte(`"\ud83d x \udc00 \u12"`)); ok {
		t.Errorf("bad escape accepted: %q", v)
	}
	if v, ok := JSONUnquote(nil, []byte(`"\ud83d x \udc00"`)); !ok || string(v) != "\uFFFD x \uFFFD" {
		t.Errorf("lone surrogates: %q %v", v, ok)
	}
}

func TestJSONReplace(t *testing.T) {
	body := []byte(doc)
	out, ok := JSONReplace(nil, body, "customer.email", []byte(`"***"`))
	if !ok {
		t.Fatal("not replaced")
	}
	var got, want map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, out)
	}
	_ = json.Unmarshal(body, &want)
	want["customer"].(map[string]any)["email"] = "***"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("replaced document differs:\n%s", out)
	}
	if out2, ok := JSONReplace(out[:0:0], body, "nope", []byte(`1`)); ok || len(out2) != 0 {
		t.Errorf("replaced a missing path: %q", out2)
	}
	// A reused buffer: no allocation.
	buf := make([]byte, 0, 2*len(body))
	if n := testing.AllocsPerRun(100, func() {
		buf, _ = JSONReplace(buf[:0], body, "items.1", []byte(`null`))
	}); n != 0 {
		t.Errorf("JSONReplace allocates %v times", n)
	}
}

func TestJSONEach(t *testing.T) {
	var elems []string
	ok := JSONEach([]byte(` [1, "a,b", {"c":[2]}, [] ,null ] `), func(i int, e []byte) bool {
		elems = append(elems, strconv.Itoa(i)+"="+string(e))
		return true
	})
	if want := []string{`0=1`, `1="a,b"`, `2={"c":[2]}`, `3=[]`, `4=null`}; !ok || !reflect.DeepEqual(elems, want) {
		t.Errorf("JSONEach: %v %q", ok, elems)
	}
	n := 0
	if !JSONEach([]byte(`[1,2,3]`), func(int, []byte) bool { n++; return n < 2 }) || n != 2 {
		t.Errorf("stopping early: %d", n)
	}
	if !JSONEach([]byte(`[]`), func(int, []byte) bool { t.Error("called"); return true }) {
		t.Error("empty array")
	}
	for _, bad := range []string{`{}`, `[1,]`, `[1 2]`, `[1`, `[`, `[1]x`, ``} {
		if JSONEach([]byte(bad), func(int, []byte) bool { return true }) {
			t.Errorf("JSONEach(%q) = true", bad)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "ctl\x00\x1f\n\r\t", "unié😀", "\xff"} {
		b := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%q -> %s: %v", s, b, err)
		} else if back != strings.ToValidUTF8(s, "\uFFFD") {
			t.Errorf("%q -> %s -> %q", s, b, back)
		}
	}
}

func TestJSONNoAllocations(t *testing.T) {
	body := []byte(doc)
	if n := testing.AllocsPerRun(100, func() {
		JSONNumber(body, "customer.deep.k.1.v")
		JSONString(body, "customer.email")
		JSONBool(body, "ok")
		JSONGet(body, "weird")
		JSONEach(body[strings.Index(doc, `[{"sku"`):], func(int, []byte) bool { return true })
	}); n != 0 {
		t.Errorf("lookups allocate %v times", n)
	}
}

func BenchmarkJSONNumber(b *testing.B) {
	body := []byte(doc)
	for b.Loop() {
		JSONNumber(body, "str")
	}
}

// TestEscapeFormula checks the branch-free escape arithmetic wasmrouter.h uses (simdjson's)
// against the escapes table, for every step.
func TestEscapeFormula(t *testing.T) {
	for carry := uint32(0); carry < 2; carry++ {
		for mask := uint32(0); mask < 256; mask++ {
			bs := mask &^ carry
			follows := bs<<1 | carry
			seq := bs&^0x55&^follows + bs
			esc := (0x55 ^ seq<<1) & follows & 0xff
			next := seq >> 8 & 1
			want := uint32(escapes[carry<<8|mask])
			if esc != want&0xff || next != want>>8 {
				t.Errorf("carry %d backslashes %08b: escaped %08b next %d, want %08b %d", carry, mask, esc, next, want&0xff, want>>8)
			}
		}
	}
}
