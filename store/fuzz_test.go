package store

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// FuzzDecode checks that no input makes decoding panic, and that whatever decodes encodes back
// to exactly the same bytes (the encoding is canonical), with peek agreeing with the decoder.
func FuzzDecode(f *testing.F) {
	seeds := []*event.Event{
		{},
		testEvent(1, 10),
		testEvent(2, 0),
		{Headers: event.Table{
			"all": []any{nil, true, int8(-1), uint8(1), int16(-2), uint16(2), int32(-3), uint32(3),
				int64(-4), float32(math.NaN()), math.Inf(1), event.Decimal{Scale: 3, Value: 7}, "s",
				[]byte{9}, time.Time{}, event.Table{"n": event.Table{}}, []any{}},
		}, Body: []byte{0, 1}},
	}
	for _, ev := range seeds {
		b, err := appendRecord(nil, ev, FingerprintOf(ev))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{recordVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		src, rk, peekErr := peekRecord(b)
		ev, fp, err := decodeRecord(b, 7)
		if err != nil {
			return
		}
		if peekErr != nil || string(src) != ev.Source || string(rk) != ev.RoutingKey {
			t.Fatalf("peek (%q, %q, %v) disagrees with decode (%q, %q)", src, rk, peekErr, ev.Source, ev.RoutingKey)
		}
		again, err := appendRecord(nil, ev, fp)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip differs:\n in  %x\n out %x", b, again)
		}
	})
}
