package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// poisonScenario mixes, into normal traffic, events on which the guest filter traps, loops
// past its timeout or asks for dead-lettering, messages with odd headers and bodies. Failing
// events are retried, then dead-lettered with a reason; the others flow, their headers and
// bodies intact.
func poisonScenario() *scenario {
	return &scenario{
		name:  "poison",
		about: "poison messages, headers nested past what the client decodes, and a guest that traps or writes hostile headers on some events, mixed into normal traffic",
		prepare: func(w *world) error {
			if _, err := os.Stat(w.o.guest); err != nil {
				return fmt.Errorf("the hostile guest: %w", err)
			}
			w.modules = fmt.Sprintf("module \"hostile\" {\n  path = %s\n  timeout = \"100ms\"\n}\n", hclString(w.o.guest))
			// A transform, so that its header writes reach the host's checks (a filter may not
			// write headers at all).
			w.sinks = []sinkSpec{{name: "out", transforms: []string{"hostile"}}}
			w.gen = poisonMessages
			w.sourceDLX = true // the nested-header messages: rejected by the source, dead-lettered by the broker
			// A failing event holds its stream for its retries: keep them short.
			w.retry = "retry {\n    attempts = 3\n    backoff = \"20ms\"\n    max_backoff = \"100ms\"\n  }"
			w.verify = verifyPoison
			return nil
		},
		faults: func(ctx context.Context, w *world, _ *rand.Rand) error {
			w.res.FaultKind = "poison kinds in the traffic: trap, timeout, dead-letter code, hostile header writes, headers nested 40 deep, odd headers, odd bodies"
			<-ctx.Done()
			return nil
		},
		check: func(w *world) {
			if n := w.res.DeadLetterReasons[""]; n > 0 {
				w.res.violate("%d dead letters carry no %s", n, headerError)
			}
			if w.res.DeadLettered == 0 {
				w.res.violate("nothing was dead-lettered: the poison proved nothing")
			}
			if n := w.res.DeadLetterReasons[normaliseReason("rejected by the source: "+nestedReason)]; n == 0 {
				w.res.violate("no nested-header message was rejected by the source: that poison proved nothing (reasons %v)", w.res.DeadLetterReasons)
			}
			// Neither the nested headers nor the guest's header writes may cost a connection:
			// two connections (consuming, publishing) since start-up, both up.
			if v, ok := metric(w.router.admin, "router_broker_reconnects_total", "cluster", w.main); !ok || v != 2 {
				w.res.violate("router_broker_reconnects_total = %v (exported: %v), want 2: a connection was lost", v, ok)
			}
			if v, ok := metric(w.router.admin, "router_broker_connected", "cluster", w.main); !ok || v != 1 {
				w.res.violate("router_broker_connected = %v (exported: %v), want 1", v, ok)
			}
		},
	}
}

// poisonMessages is the traffic of the poison scenario; the hostile guest acts on header "op".
func poisonMessages(n int) (string, amqp.Publishing, string) {
	key, msg, _ := plainMessages(n)
	switch {
	case n%1000 == 17:
		// Nested deeper than the AMQP client decodes: the source rejects it, the broker
		// dead-letters it to the source queue's dead-letter exchange.
		msg.Headers["deep"] = nestedTable(40)
		return key, msg, classDeadLetter
	case n%500 == 29, n%500 == 229, n%500 == 429:
		// The guest writes a header the host refuses: a name over 255 bytes, an x-router-
		// name, an empty name. The call fails: retried, then dead-lettered.
		msg.Headers["op"] = [...]string{"long_header", "router_header", "empty_header"}[n%500/200]
		return key, msg, classDeadLetter
	case n%100 == 0:
		msg.Headers["op"] = "trap"
		return key, msg, classDeadLetter
	case n%2000 == 13:
		msg.Headers["op"] = "loop" // runs past the module's timeout
		return key, msg, classDeadLetter
	case n%50 == 7:
		msg.Headers["op"] = "code"
		msg.Headers["code"] = "3"
		return key, msg, classDeadLetter
	case n%10 == 3:
		msg.Headers = oddHeaders(n)
	case n%25 == 11:
		msg.ContentType = "application/octet-stream"
		msg.Body = oddBody(n)
	default:
		msg.Headers["op"] = "ok"
	}
	return key, msg, classDeliver
}

// nestedReason is why the router's frame filter replaces a table nested too deep (the reason
// the checker reads from the dead-lettered copy).
const nestedReason = "header table cannot be decoded: nested deeper than 32 levels"

// nestedTable is a table holding a table, depth levels deep.
func nestedTable(depth int) amqp.Table {
	t := amqp.Table{"leaf": int32(depth)}
	for range depth - 1 {
		t = amqp.Table{"n": t}
	}
	return t
}

// oddHeaders has every AMQP field type, nesting, odd names and long values.
func oddHeaders(n int) amqp.Table {
	return amqp.Table{
		"chaos-n": int64(n), "i8": int8(-5), "u8": uint8(200), "i16": int16(-300), "u16": uint16(60000),
		"i32": int32(-1 << 30), "u32": uint32(4000000000), "i64": int64(-1 << 40), "f32": float32(1.5), "f64": 2.25,
		"dec": amqp.Decimal{Scale: 2, Value: 12345}, "ts": time.Unix(1700000000+int64(n), 0), "yes": true, "null": nil,
		"bytes": []byte{0, 1, 2, 255}, "arr": []any{int32(1), "two", []any{true, nil}},
		"tbl":  amqp.Table{"nested": amqp.Table{"deep": int64(-1)}},
		"ключ": "значение ✓", "empty": "", "long": strings.Repeat("x", 4000), "x-router-route": "spoofed",
		"op": "ok",
	}
}

// oddBody is empty, binary, large or not UTF-8, by n.
func oddBody(n int) []byte {
	switch n % 4 {
	case 0:
		return nil
	case 1:
		return []byte{0, 0xff, 0xfe, 0x80, 0}
	case 2:
		return bytes.Repeat([]byte{0xab}, 256<<10)
	default:
		return []byte("\xc3\x28 not utf-8")
	}
}

// verifyPoison checks that a delivered message kept its body and its headers, types
// included; the router's own x-router-* headers replace any the publisher set.
func verifyPoison(_ string, d *amqp.Delivery) string {
	i := strings.LastIndexByte(d.MessageId, '-')
	n, err := strconv.Atoi(d.MessageId[i+1:])
	if err != nil {
		return "unexpected message id"
	}
	_, want, _ := poisonMessages(n)
	if !bytes.Equal(d.Body, want.Body) {
		return fmt.Sprintf("body changed (%d bytes, want %d)", len(d.Body), len(want.Body))
	}
	got := amqp.Table{}
	for k, v := range d.Headers {
		if !strings.HasPrefix(k, "x-router-") && k != headerSentAt {
			got[k] = v
		}
	}
	wantH := amqp.Table{}
	for k, v := range want.Headers {
		if !strings.HasPrefix(k, "x-router-") {
			wantH[k] = v
		}
	}
	if !reflect.DeepEqual(normalise(got), normalise(wantH)) {
		return fmt.Sprintf("headers changed: got %v, want %v", short(got), short(wantH))
	}
	if route, _ := d.Headers[headerRoute].(string); route != "out" {
		return fmt.Sprintf("%s = %q, want the route's name", headerRoute, route)
	}
	return ""
}

// normalise makes timestamps comparable (time.Time carries a location).
func normalise(v any) any {
	switch x := v.(type) {
	case time.Time:
		return "T" + strconv.FormatInt(x.Unix(), 10)
	case amqp.Table:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	}
	return v
}

func short(t amqp.Table) string {
	s := fmt.Sprintf("%#v", normalise(t))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
