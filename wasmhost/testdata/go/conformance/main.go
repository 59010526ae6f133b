//go:build wasip1

// Command conformance is the ABI conformance guest in Go, the twin of testdata/c/conformance.c:
// the header "op" selects what a call does, and one test table runs against both.
package main

import (
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"

	"github.com/wasmrouter/wasmrouter/guest/wr"
)

func main() {}

var initConfig = "<unset>"

func init() {
	if v, ok := wr.Config("init"); ok {
		initConfig = v
	} else {
		initConfig = "<absent>"
	}
}

//go:wasmexport wr_filter
func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, run) }

//go:wasmexport wr_transform
func transform(ptr, size uint32) int32 { return wr.Run(ptr, size, run) }

//go:wasmexport wr_handle
func handle(ptr, size uint32) int32 { return wr.Run(ptr, size, run) }

type appender func(dst []byte, name string) ([]byte, bool)

// get starts with 16 bytes of room so that longer values take the SDK's second call.
func get(fn appender, name string) (string, bool) {
	v, ok := fn(make([]byte, 0, 16), name)
	return string(v), ok
}

func header(name, def string) string {
	if v, ok := get(wr.AppendHeader, name); ok {
		return v
	}
	return def
}

func report(fn appender, prefix, name string) {
	if v, ok := get(fn, name); ok {
		wr.SetHeader(prefix+name, v)
	} else {
		wr.SetHeader(prefix+name, "<absent>")
	}
}

func reportList(fn appender, prefix string) {
	names, ok := get(wr.AppendHeader, "names")
	if !ok {
		return
	}
	for _, n := range strings.Split(names, ",") {
		report(fn, prefix, n)
	}
}

var metaNames = []string{"routing_key", "exchange", "source", "route", "message_id",
	"correlation_id", "content_type", "type", "app_id", "timestamp", "seq", "trace_id", "nope"}

func run(body []byte) wr.Result {
	switch op := header("op", ""); op {
	case "return":
		code, _ := strconv.Atoi(header("code", "0"))
		return wr.Result(code)
	case "meta":
		for _, n := range metaNames {
			report(wr.AppendMeta, "m.", n)
		}
	case "header":
		reportList(wr.AppendHeader, "h.")
	case "config":
		reportList(wr.AppendConfig, "c.")
	case "small":
		buf := []byte("########")
		n := wr.MetaGet("routing_key", buf[:3])
		n0 := wr.MetaGet("routing_key", nil)
		wr.SetHeader("small", fmt.Sprintf("%d:%s:%d", n, buf, n0))
	case "body":
		wr.SetBody(append(append([]byte("<"), body...), '>'))
	case "rk":
		if v, ok := get(wr.AppendHeader, "value"); ok {
			wr.SetRoutingKey(v)
		}
	case "hset":
		name, ok1 := get(wr.AppendHeader, "name")
		value, ok2 := get(wr.AppendHeader, "value")
		if ok1 && ok2 {
			wr.SetHeader(name, value)
		}
	case "emit":
		count, _ := strconv.Atoi(header("count", "1"))
		target, ok1 := get(wr.AppendHeader, "target")
		key, ok2 := get(wr.AppendHeader, "key")
		for i := 0; i < count && ok1 && ok2; i++ {
			if !wr.Emit(target, key, body) {
				return wr.Fail(wr.DeadLetter, "emit returned -1")
			}
		}
	case "error":
		if reason, ok := get(wr.AppendHeader, "reason"); ok {
			wr.SetError(reason)
		}
		code, _ := strconv.Atoi(header("code", "3"))
		return wr.Result(code)
	case "log":
		level, _ := strconv.Atoi(header("level", "1"))
		if msg, ok := get(wr.AppendHeader, "msg"); ok {
			wr.Log(wr.Level(level), msg)
		}
	case "print":
		msg := header("msg", "")
		fmt.Println(msg)
		fmt.Fprintf(os.Stderr, "err:%s\n", msg)
	case "hash":
		h := fnv.New64a()
		h.Write(body)
		wr.SetHeader("len", strconv.Itoa(len(body)))
		wr.SetHeader("fnv", fmt.Sprintf("%016x", h.Sum64()))
	case "json":
		path := header("path", "")
		raw, kind, ok := wr.JSONGet(body, path)
		wr.SetHeader("kind", kind.String())
		if ok {
			wr.SetHeader("raw", string(raw))
		}
		if num, ok := wr.JSONNumber(body, path); ok {
			wr.SetHeader("num", strconv.FormatFloat(num, 'f', 6, 64))
		}
	case "initcfg":
		wr.SetHeader("init", initConfig)
	default:
		return wr.Fail(wr.DeadLetter, "unknown op")
	}
	return wr.Continue
}
