package store

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

func roundTrip(t *testing.T, ev *event.Event) *event.Event {
	t.Helper()
	fp := Fingerprint{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	b, err := appendRecord(nil, ev, fp)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	got, gotFP, err := decodeRecord(b, 42)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if gotFP != fp || got.Seq != 42 {
		t.Fatalf("fingerprint %x seq %d, want %x 42", gotFP, got.Seq, fp)
	}
	if again := encoded(t, got); !bytes.Equal(again[fixedLen:], b[fixedLen:]) {
		t.Fatalf("re-encoding differs")
	}
	return got
}

func TestCodecHeaderTypes(t *testing.T) {
	when := time.Date(2023, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := map[string]any{
		"nil":        nil,
		"true":       true,
		"false":      false,
		"int8":       int8(-128),
		"uint8":      uint8(255),
		"int16":      int16(-32768),
		"uint16":     uint16(65535),
		"int32":      int32(math.MinInt32),
		"uint32":     uint32(math.MaxUint32),
		"int64":      int64(math.MinInt64),
		"int64max":   int64(math.MaxInt64),
		"float32":    float32(-1.5),
		"float64":    3.25,
		"inf32":      float32(math.Inf(1)),
		"neginf64":   math.Inf(-1),
		"negzero":    math.Copysign(0, -1),
		"decimal":    event.Decimal{Scale: 2, Value: -12345},
		"string":     "héllo\x00world",
		"emptystr":   "",
		"bytes":      []byte{0, 1, 2, 255},
		"emptybytes": []byte{},
		"time":       when,
		"zerotime":   time.Time{},
		"beforeunix": time.Date(1600, 1, 1, 0, 0, 0, 999999999, time.UTC),
		"table":      event.Table{"a": int16(1), "b": event.Table{"c": []any{"d", uint32(7)}}},
		"emptytable": event.Table{},
		"array":      []any{int8(1), "two", 3.0, []any{nil, false}, event.Table{"x": []byte("y")}},
		"emptyarray": []any{},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			ev := &event.Event{Headers: event.Table{"h": v}}
			got := roundTrip(t, ev)
			if !reflect.DeepEqual(got.Headers, ev.Headers) {
				t.Fatalf("got %#v, want %#v", got.Headers["h"], v)
			}
		})
	}
}

func TestCodecNaN(t *testing.T) {
	nan32 := math.Float32frombits(0x7fc00001)
	nan64 := math.Float64frombits(0x7ff8000000000123)
	got := roundTrip(t, &event.Event{Headers: event.Table{"f": nan32, "d": nan64}})
	if b := math.Float32bits(got.Headers["f"].(float32)); b != 0x7fc00001 {
		t.Errorf("float32 NaN bits %#x", b)
	}
	if b := math.Float64bits(got.Headers["d"].(float64)); b != 0x7ff8000000000123 {
		t.Errorf("float64 NaN bits %#x", b)
	}
}

func TestCodecEventFields(t *testing.T) {
	ev := &event.Event{
		Source: "in", Exchange: "ex", RoutingKey: "a.b.c",
		Props: event.Properties{
			ContentType: "text/plain", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 9,
			CorrelationID: "c", ReplyTo: "r", Expiration: "60000", MessageID: "m", Type: "t",
			UserID: "guest", AppID: "app", Timestamp: time.Unix(1700000000, 0).UTC(),
		},
		Headers:    event.Table{"k": "v"},
		Body:       []byte("body"),
		IngestTime: time.Unix(0, 1700000000123456789).UTC(),
	}
	got := roundTrip(t, ev)
	want := *ev
	want.Seq = 42
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("got %+v\nwant %+v", got, &want)
	}
	// An absent timestamp and an absent ingest time stay absent.
	got = roundTrip(t, &event.Event{})
	if !got.Props.Timestamp.IsZero() || !got.IngestTime.IsZero() || got.Headers != nil || got.Body != nil {
		t.Fatalf("empty event came back as %+v", got)
	}
}

func TestCodecPeek(t *testing.T) {
	ev := testEvent(5, 100)
	b := encoded(t, ev)
	src, rk, err := peekRecord(b)
	if err != nil || string(src) != ev.Source || string(rk) != ev.RoutingKey {
		t.Fatalf("peek = %q %q %v", src, rk, err)
	}
	ingest, _, err := peekMeta(b)
	if err != nil || ingest != ev.IngestTime.UnixNano() {
		t.Fatalf("peekMeta = %d %v", ingest, err)
	}
	if _, _, err := peekRecord(b[:fixedLen+1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("peek of truncated record: %v", err)
	}
}

func TestCodecUnsupported(t *testing.T) {
	for name, v := range map[string]any{
		"int":     1,
		"map":     map[string]any{"a": 1},
		"nested":  event.Table{"a": []any{uint64(1)}},
		"pointer": new(int),
	} {
		_, err := appendRecord(nil, &event.Event{Headers: event.Table{"h": v}}, Fingerprint{})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
	// Too deep nesting, and a table that contains itself, fail instead of recursing forever.
	deep := event.Table{}
	for range maxDepth + 1 {
		deep = event.Table{"t": deep}
	}
	self := event.Table{}
	self["self"] = self
	for _, h := range []event.Table{deep, self} {
		if _, err := appendRecord(nil, &event.Event{Headers: h}, Fingerprint{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("deep table: err = %v", err)
		}
	}
	// Exactly maxDepth levels are fine.
	ok := event.Table{}
	for range maxDepth - 1 {
		ok = event.Table{"t": ok}
	}
	roundTrip(t, &event.Event{Headers: ok})
}

func TestDecodeRejects(t *testing.T) {
	valid := encoded(t, &event.Event{Source: "s", Headers: event.Table{"a": int32(1), "b": true}, Body: []byte("x")})
	header := valid[:fixedLen]
	str := func(s string) []byte { return appendString(nil, s) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	emptyProps := appendProps(nil, &event.Properties{})
	cases := map[string][]byte{
		"empty":          {},
		"version":        append([]byte{2}, valid[1:]...),
		"truncated":      valid[:len(valid)-1],
		"trailing":       append(bytes.Clone(valid), 0),
		"overlong len":   cat(header, []byte{0x81, 0x00}),
		"length too big": cat(header, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, []byte("abc")),
		"bad ts flag":    cat(header, str(""), str(""), str(""), str(""), str(""), []byte{0, 0}, str(""), str(""), str(""), str(""), []byte{2}),
		"unsorted keys": cat(header, str(""), str(""), str(""), emptyProps,
			[]byte{2}, str("b"), []byte{tagNil}, str("a"), []byte{tagNil}, []byte{0}),
		"duplicate keys": cat(header, str(""), str(""), str(""), emptyProps,
			[]byte{2}, str("a"), []byte{tagNil}, str("a"), []byte{tagNil}, []byte{0}),
		"huge count": cat(header, str(""), str(""), str(""), emptyProps, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}),
		"bad bool":   cat(header, str(""), str(""), str(""), emptyProps, []byte{1}, str("a"), []byte{tagBool, 2}, []byte{0}),
		"bad tag":    cat(header, str(""), str(""), str(""), emptyProps, []byte{1}, str("a"), []byte{'Z'}, []byte{0}),
		"bad nanos": cat(header, str(""), str(""), str(""), emptyProps, []byte{1}, str("a"), []byte{tagTime, 0},
			[]byte{0x80, 0x94, 0xeb, 0xdc, 0x03}, []byte{0}),
	}
	// Nesting beyond maxDepth, built by hand since the encoder refuses it.
	deep := cat(header, str(""), str(""), str(""), emptyProps)
	for range maxDepth + 1 {
		deep = append(deep, 1, 1, 'k', tagTable)
	}
	cases["too deep"] = append(deep, 0)
	for name, b := range cases {
		if _, _, err := decodeRecord(b, 1); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	if _, _, err := decodeRecord(valid, 1); err != nil {
		t.Fatalf("valid record: %v", err)
	}
}

func TestDecodeBoundedAllocation(t *testing.T) {
	// A claimed array of a billion elements in a few bytes must fail, not allocate.
	b := encoded(t, &event.Event{})
	b = b[:len(b)-2] // drop the empty table and body
	b = append(b, 1, 1, 'a', tagArray, 0x80, 0x94, 0xeb, 0xdc, 0x03, tagNil, 0)
	allocs := testing.AllocsPerRun(10, func() { decodeRecord(b, 1) })
	if allocs > 20 {
		t.Fatalf("%v allocations for a hostile count", allocs)
	}
	if _, _, err := decodeRecord(b, 1); err == nil || !strings.Contains(err.Error(), "beyond end") {
		t.Fatalf("err = %v", err)
	}
}
