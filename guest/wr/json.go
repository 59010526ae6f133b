package wr

import (
	"bytes"
	"strconv"
	"unsafe"
)

// A fast JSON reader and rewriter for event bodies. It finds one value by path without decoding
// the document (encoding/json costs tens of microseconds per event in a WebAssembly guest; this
// costs about as much as scanning the bytes up to the value) and allocates nothing unless a
// string has escapes to decode.
//
// A path is a dot-separated list of object keys, e.g. "customer.address.city"; a segment of
// decimal digits indexes an array when the value there is one ("items.0.sku"). Keys are matched
// after decoding their escapes. A key that itself contains a dot cannot be addressed.
//
// The reader checks what it walks over, not the whole document: a malformed body makes lookups
// fail (ok false) where the damage is on the way to the value, and may go unnoticed elsewhere.

// Kind is the type of a JSON value.
type Kind uint8

const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	return [...]string{"invalid", "null", "bool", "number", "string", "array", "object"}[k]
}

// JSONGet returns the raw text of the value at path (strings keep their quotes) and its kind.
func JSONGet(body []byte, path string) (raw []byte, kind Kind, ok bool) {
	start, end, ok := find(body, path)
	if !ok {
		return nil, Invalid, false
	}
	raw = body[start:end]
	return raw, kindOf(raw[0]), true
}

// JSONNumber returns the number at path.
func JSONNumber(body []byte, path string) (float64, bool) {
	raw, kind, ok := JSONGet(body, path)
	if !ok || kind != Number {
		return 0, false
	}
	return parseNumber(raw)
}

// JSONInt returns the number at path if it is an integer that fits in an int64 (written
// without a fraction or exponent).
func JSONInt(body []byte, path string) (int64, bool) {
	raw, kind, ok := JSONGet(body, path)
	if !ok || kind != Number || !validNumber(raw) {
		return 0, false
	}
	n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(raw), len(raw)), 10, 64)
	return n, err == nil
}

// JSONBool returns the boolean at path.
func JSONBool(body []byte, path string) (value, ok bool) {
	raw, _, ok := JSONGet(body, path)
	switch {
	case ok && string(raw) == "true":
		return true, true
	case ok && string(raw) == "false":
		return false, true
	}
	return false, false
}

// JSONString returns the contents of the string at path. Without escapes in it, the result is
// a view into body (no allocation); with escapes, a decoded copy.
func JSONString(body []byte, path string) ([]byte, bool) {
	raw, kind, ok := JSONGet(body, path)
	if !ok || kind != String {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	return JSONUnquote(nil, raw)
}

// JSONReplace appends body to dst with the value at path replaced by newRaw (which must be valid
// JSON, e.g. from AppendJSONString). Pass a reused dst[:0] to avoid allocating. When path is
// not found, it returns dst unchanged and false.
func JSONReplace(dst, body []byte, path string, newRaw []byte) ([]byte, bool) {
	start, end, ok := find(body, path)
	if !ok {
		return dst, false
	}
	dst = append(dst, body[:start]...)
	dst = append(dst, newRaw...)
	return append(dst, body[end:]...), true
}

// JSONEach calls fn with the index and raw text of each element of the array raw, until fn
// returns false. It returns false when raw is not a well-formed array.
func JSONEach(raw []byte, fn func(i int, elem []byte) bool) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return skipSpace(raw, i+1) == len(raw)
	}
	for n := 0; ; n++ {
		end, ok := skipValue(raw, i)
		if !ok {
			return false
		}
		if !fn(n, raw[i:end]) {
			return true
		}
		i = skipSpace(raw, end)
		if i >= len(raw) {
			return false
		}
		if raw[i] == ']' {
			return skipSpace(raw, i+1) == len(raw)
		}
		if raw[i] != ',' {
			return false
		}
		i = skipSpace(raw, i+1)
	}
}

// AppendJSONString appends s as a JSON string (quoted and escaped) to dst.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
