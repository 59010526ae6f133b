//go:build wasip1

// Command redact is a transform guest that hides personal data: it replaces the value of each
// configured JSON field with the string "***" and sets the header x-redacted to the number of
// fields it replaced (0 included). A body that is not a JSON object is dead-lettered rather than
// passed on unredacted.
//
// Config: fields (comma-separated paths, e.g. "email,customer.email,customer.phone"; required).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o redact.wasm ./examples/wasm/redact
package main

import (
	"strconv"
	"strings"

	"github.com/wasmrouter/wasmrouter/guest/wr"
)

func main() {}

var (
	fields []string
	stars  = []byte(`"***"`)
	// Two buffers reused call after call: each replacement reads one and writes the other.
	bufs [2][]byte
)

func init() {
	v, _ := wr.Config("fields")
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		wr.SetError(`redact: config "fields" is required`)
		panic(`redact: config "fields" is required`)
	}
}

//go:wasmexport wr_transform
func transform(ptr, size uint32) int32 { return wr.Run(ptr, size, redact) }

func redact(body []byte) wr.Result {
	if !isObject(body) {
		return wr.Fail(wr.DeadLetter, "redact: body is not a JSON object")
	}
	cur, n := body, 0
	for _, f := range fields {
		next := &bufs[n%2]
		out, ok := wr.JSONReplace((*next)[:0], cur, f, stars)
		if !ok {
			continue
		}
		*next = out
		cur = out
		n++
	}
	if n > 0 {
		wr.SetBody(cur)
	}
	wr.SetHeader("x-redacted", strconv.Itoa(n))
	return wr.Continue
}

// isObject tells whether the body starts like a JSON object.
func isObject(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}
