package wr

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// skipContainerRef is the obvious byte loop skipContainer must agree with.
func skipContainerRef(b []byte, i int) (int, bool) {
	depth, inString := 0, false
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\': // escapes the next byte, even outside strings (where it is invalid)
			i++
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

func FuzzSkipContainer(f *testing.F) {
	for _, s := range []string{doc, `{"a":"\\"}`, `["\\\\\"]"]`, `{{{{{{{{}}}}}}}}`, `[` + strings.Repeat(`"x\"",`, 9) + `1]`,
		`{"a":"b\`, `[]]]`, `{"k":"}}}}}}}}}}"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		for i := 0; i < len(b) && i < 4; i++ {
			if b[i] != '{' && b[i] != '[' {
				continue
			}
			end, ok := skipContainer(b, i)
			wantEnd, wantOK := skipContainerRef(b, i)
			if end != wantEnd || ok != wantOK {
				t.Fatalf("skipContainer(%q, %d) = %d %v, want %d %v", s, i, end, ok, wantEnd, wantOK)
			}
		}
	})
}

// FuzzJSONGet checks lookups in valid documents against encoding/json.
func FuzzJSONGet(f *testing.F) {
	f.Add(doc, "customer.deep.k.1")
	f.Add(`{"a":{"b":[0,{"c":"d"}]}}`, "a.b.1.c")
	f.Add(`{"a":1,"a":2}`, "a")
	f.Fuzz(func(t *testing.T, body, path string) {
		raw, kind, ok := JSONGet([]byte(body), path)
		if !json.Valid([]byte(body)) || hasDuplicateKeys(body) || !utf8.ValidString(body) || !utf8.ValidString(path) {
			return // only must not panic
		}
		want, found := lookup(t, body, path)
		if ok != found {
			t.Fatalf("JSONGet(%q, %q) found=%v, encoding/json found=%v", body, path, ok, found)
		}
		if !ok {
			return
		}
		got, err := decodeNumbers(raw)
		if err != nil {
			t.Fatalf("raw %q: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) || kind != kindOf(raw[0]) {
			t.Fatalf("JSONGet(%q, %q) = %q, encoding/json has %#v", body, path, raw, want)
		}
	})
}

// decodeNumbers decodes JSON with numbers kept as text: valid JSON may hold a number no float64
// can represent (1e400), which JSONGet returns as it is.
func decodeNumbers(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func lookup(t *testing.T, body, path string) (any, bool) {
	v, err := decodeNumbers([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return nil, false
			}
		case []any: // a segment of 1 to 9 digits indexes an array
			if seg == "" || len(seg) > 9 || strings.Trim(seg, "0123456789") != "" {
				return nil, false
			}
			n, _ := strconv.Atoi(seg)
			if n >= len(x) {
				return nil, false
			}
			v = x[n]
		default:
			return nil, false
		}
	}
	return v, true
}

// hasDuplicateKeys reports objects with a repeated key (encoding/json keeps the last, JSONGet
// the first).
func hasDuplicateKeys(body string) bool {
	dec := json.NewDecoder(strings.NewReader(body))
	type frame struct {
		keys     map[string]bool
		isObject bool
		wantKey  bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObject && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.isObject {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObject: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// FuzzParseNumber checks the shortcut against strconv on every number it accepts.
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "150.25", "1e3", "0.1", "123456789012345", "1234567890123456",
		"0.0000000000000000000001", "0.00000000000000000000001", "-2.5", "9007199254740993", "1.7976931348623157e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseNumber([]byte(s))
		if !validNumber([]byte(s)) {
			if ok {
				t.Fatalf("parseNumber(%q) accepted an invalid number", s)
			}
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if (err == nil) != ok || ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseNumber(%q) = %v %v, strconv gives %v %v", s, got, ok, want, err)
		}
	})
}
