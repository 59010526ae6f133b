package store

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/amqptable"
)

// loggedTable is the log's encoding of t, as a record holds it.
func loggedTable(t *testing.T, h event.Table) []byte {
	t.Helper()
	b, err := appendTable(nil, h, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAMQPHeadersFromTheLogKeepEveryType: the AMQP encoding made from the log's bytes reads
// back as the logged table, every value with its type (a timestamp to the second, as AMQP
// carries it), without the entries skip names.
func TestAMQPHeadersFromTheLogKeepEveryType(t *testing.T) {
	when := time.Date(2023, 1, 2, 3, 4, 5, 600, time.UTC)
	before := time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC)
	h := event.Table{
		"nil": nil, "true": true, "false": false,
		"int8": int8(-7), "uint8": uint8(250), "int16": int16(-30000), "uint16": uint16(65000),
		"int32": int32(-2000000000), "uint32": uint32(4000000000), "int64": int64(-1) << 40,
		"float32": float32(1.25), "float64": 3.141592653589793,
		"decimal": event.Decimal{Scale: 3, Value: -123456},
		"string":  "héllo", "empty": "", "long": strings.Repeat("x", 300),
		"bytes": []byte{0, 0xff, 'x'}, "no bytes": []byte{},
		"time": when, "before 1970": before,
		"table":        event.Table{"n": int64(1) << 33, "inner": event.Table{"flag": true, "list": []any{int16(1), "a"}}, "x-router-seq": int64(3)},
		"array":        []any{int8(1), "two", 3.5, nil, []byte("b"), event.Table{"k": int32(4)}, []any{uint8(5)}, []any{}},
		"x-router-seq": int64(9), "x-router-route": "old", "x-router-error": "kept",
	}
	skip := func(name []byte) bool { return string(name) == "x-router-seq" || string(name) == "x-router-route" }
	got, err := AppendAMQPHeaders([]byte("prefix"), loggedTable(t, h), skip)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("dst not appended to: %q", got[:6])
	}
	parsed, err := amqptable.Parse(got[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	want := event.Table{}
	for k, v := range h {
		want[k] = v
	}
	delete(want, "x-router-seq")
	delete(want, "x-router-route")
	want["time"] = time.Unix(when.Unix(), 0).UTC()
	if !reflect.DeepEqual(parsed, want) {
		t.Errorf("read back:\n%#v\nwant:\n%#v", parsed, want)
	}
}

// TestAMQPHeadersFromTheLogByteForByte pins the encoding of a small table: AMQP's short string
// names, type letters, 32-bit lengths and big-endian values, in the log's (sorted) order.
func TestAMQPHeadersFromTheLogByteForByte(t *testing.T) {
	h := event.Table{"b": int16(-2), "a": "hi", "c": event.Table{"d": []any{true}}, "e": time.Unix(258, 999).UTC()}
	got, err := AppendAMQPHeaders(nil, loggedTable(t, h), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		1, 'a', 'S', 0, 0, 0, 2, 'h', 'i',
		1, 'b', 's', 0xff, 0xfe,
		1, 'c', 'F', 0, 0, 0, 9, 1, 'd', 'A', 0, 0, 0, 2, 't', 1,
		1, 'e', 'T', 0, 0, 0, 0, 0, 0, 1, 2,
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoded\n%v\nwant\n%v", got, want)
	}
}

// TestAMQPHeadersFromTheLogLeaveTheUnusualToTheCaller: a name AMQP cannot carry, nesting past
// amqpMaxDepth and damaged bytes are errors, and dst comes back as it was.
func TestAMQPHeadersFromTheLogLeaveTheUnusualToTheCaller(t *testing.T) {
	deep := event.Table{"v": int8(1)}
	for range amqpMaxDepth + 1 {
		deep = event.Table{"t": deep}
	}
	good := loggedTable(t, event.Table{"a": "hi", "b": int64(1)})
	for name, logged := range map[string][]byte{
		"long name": loggedTable(t, event.Table{strings.Repeat("n", 256): true}),
		"too deep":  loggedTable(t, deep),
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 0),
		"bad tag":   {1, 1, 'a', '!'},
		"bad bool":  {1, 1, 'a', 't', 2},
		"unsorted":  {2, 1, 'b', 'V', 1, 'a', 'V'},
	} {
		dst := []byte("kept")
		got, err := AppendAMQPHeaders(dst, logged, nil)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if string(got) != "kept" {
			t.Errorf("%s: dst came back as %q", name, got)
		}
	}
}

// TestBoundedScanEventsCarryTheirLoggedHeaders: a stream's (bounded) scan hands out events
// whose LoggedHeaders are their table as logged; other reads and events without headers carry
// none.
func TestBoundedScanEventsCarryTheirLoggedHeaders(t *testing.T) {
	h := event.Table{"k": "v", "n": int32(7)}
	ev := &event.Event{Source: "in", RoutingKey: "a", Headers: h, Body: []byte("x")}
	b, err := appendRecord(nil, ev, Fingerprint{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := decodeRecordIn(b, 1, &recordArena{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.LoggedHeaders, loggedTable(t, h)) || cap(got.LoggedHeaders) != len(got.LoggedHeaders) {
		t.Errorf("LoggedHeaders %v (cap %d), want %v", got.LoggedHeaders, cap(got.LoggedHeaders), loggedTable(t, h))
	}
	if c := got.Clone(); c.LoggedHeaders != nil {
		t.Error("a clone kept the logged bytes of headers it may change")
	}
	if plain, _, _ := decodeRecord(b, 1); plain.LoggedHeaders != nil {
		t.Error("an unbounded read carries LoggedHeaders")
	}
	none, _ := appendRecord(nil, &event.Event{Source: "in", RoutingKey: "a"}, Fingerprint{})
	if got, _, _ := decodeRecordIn(none, 2, &recordArena{}); got.LoggedHeaders != nil {
		t.Errorf("an event without headers carries LoggedHeaders %v", got.LoggedHeaders)
	}
}

// TestRawHeadersScanLeavesTheTableToDecodeLater: a raw-headers read from the file hands out
// events with Headers nil and the table in LoggedHeaders, which decodes to the table a plain
// read gives and encodes as from a plain read; a damaged table fails the read either way.
func TestRawHeadersScanLeavesTheTableToDecodeLater(t *testing.T) {
	h := event.Table{"a": true, "n": []any{int64(1), event.Table{"k": "v"}}, "t": time.Unix(5, 6).UTC()}
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, hh := range []event.Table{h, nil} {
		appendSync(t, s, &event.Event{Source: "in", RoutingKey: "k", Headers: hh, Body: []byte("x")}, false)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts) // from the file: the ring of recent events starts empty
	var got []*event.Event
	if _, err := s.ScanBoundedRawHeaders(1, 0, 1<<20, nil, func(ev *event.Event) bool { got = append(got, ev); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d events", len(got))
	}
	if got[0].Headers != nil || !bytes.Equal(got[0].LoggedHeaders, loggedTable(t, h)) {
		t.Fatalf("headers %v, logged %v", got[0].Headers, got[0].LoggedHeaders)
	}
	if got[1].Headers != nil || got[1].LoggedHeaders != nil {
		t.Errorf("an event without headers: %v, %v", got[1].Headers, got[1].LoggedHeaders)
	}
	if got[0].MemSize() <= (&event.Event{Source: "in", RoutingKey: "k", Body: []byte("x")}).MemSize() {
		t.Error("an undecoded table counts nothing in MemSize")
	}
	decoded, err := s.DecodeLoggedHeaders(got[0].LoggedHeaders)
	if err != nil || !reflect.DeepEqual(decoded, h) {
		t.Errorf("decoded %v, %v; want %v", decoded, err, h)
	}

	rec, err := appendRecord(nil, &event.Event{Source: "in", RoutingKey: "k", Headers: event.Table{"a": true}, Body: []byte("x")}, Fingerprint{})
	if err != nil {
		t.Fatal(err)
	}
	if rec[len(rec)-3] != 1 {
		t.Fatalf("the bool is not where the test expects it: %v", rec)
	}
	rec[len(rec)-3] = 2
	if _, _, err := decodeRecordIn(rec, 1, &recordArena{rawHeaders: true}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a damaged table read raw: %v, want ErrCorrupt", err)
	}
}
