//go:build wasip1

// Command splitter is a handler guest: the body is a JSON object with an array field, and it
// emits one event per element to a target, with the element's JSON as the body. The routing key
// is the original one with ".item" appended, unless configured. A body without the array is
// dead-lettered, and so is every event when the target is unknown (a configuration mistake that
// retrying cannot fix).
//
// Config: target (required), field (path of the array; default "items"), routing_key (optional).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o splitter.wasm ./examples/wasm/splitter
package main

import (
	"strconv"

	"github.com/wasmrouter/wasmrouter/guest/wr"
)

func main() {}

var (
	target, field = "", "items"
	fixedKey      string
	notArray      string
	unknown       string
	keyBuf        []byte
)

func init() {
	var ok bool
	if target, ok = wr.Config("target"); !ok || target == "" {
		wr.SetError(`splitter: config "target" is required`)
		panic(`splitter: config "target" is required`)
	}
	if v, ok := wr.Config("field"); ok && v != "" {
		field = v
	}
	fixedKey, _ = wr.Config("routing_key")
	notArray = "splitter: field " + strconv.Quote(field) + " is not an array"
	unknown = "splitter: unknown target " + strconv.Quote(target)
}

//go:wasmexport wr_handle
func handle(ptr, size uint32) int32 { return wr.Run(ptr, size, split) }

func split(body []byte) wr.Result {
	items, kind, ok := wr.JSONGet(body, field)
	if !ok || kind != wr.Array {
		return wr.Fail(wr.DeadLetter, notArray)
	}
	key := fixedKey
	if key == "" {
		keyBuf, _ = wr.AppendMeta(keyBuf[:0], "routing_key")
		keyBuf = append(keyBuf, ".item"...)
		key = string(keyBuf)
	}
	result := wr.Continue
	wr.JSONEach(items, func(_ int, elem []byte) bool {
		if !wr.Emit(target, key, elem) {
			result = wr.Fail(wr.DeadLetter, unknown)
			return false
		}
		return true
	})
	return result
}
