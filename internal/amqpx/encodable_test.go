package amqpx

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestCheckEncodable: what would fail to encode, or exceed frame_max and make the broker close
// the connection, is refused before anything is written.
func TestCheckEncodable(t *testing.T) {
	ok := amqp.Table{"s": "text", "n": int64(1), "t": time.Now(), "a": []any{int32(1), amqp.Table{"x": nil}}, "d": amqp.Decimal{}}
	if err := checkEncodable("x", "k", amqp.Publishing{Headers: ok}, 131072); err != nil {
		t.Errorf("ordinary headers: %v", err)
	}
	bad := map[string]amqp.Publishing{
		"long name":   {Headers: amqp.Table{strings.Repeat("h", 256): "v"}},
		"over frame":  {Headers: amqp.Table{"big": strings.Repeat("v", 200<<10)}},
		"bad type":    {Headers: amqp.Table{"c": complex(1, 2)}},
		"long type":   {Type: strings.Repeat("t", 300)},
		"nested name": {Headers: amqp.Table{"t": amqp.Table{strings.Repeat("n", 300): "v"}}},
	}
	for name, msg := range bad {
		if err := checkEncodable("x", "k", msg, 131072); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestCheckEncodableAcceptsWhatValidateAccepts: Publish relies on checkEncodable alone for the
// value types (the library's Table.Validate would refuse the same ones, after the channel
// lock), so the two must agree on every type, at the top level, in arrays and in tables.
func TestCheckEncodableAcceptsWhatValidateAccepts(t *testing.T) {
	values := []any{
		nil, true, byte(1), int8(1), int16(1), uint16(1), int(1), int32(1), uint32(1), int64(1),
		uint64(1), uint(1), float32(1), float64(1), complex(1, 2), "s", []byte("b"), time.Now(),
		amqp.Decimal{}, []any{int32(1)}, []any{uint64(1)}, amqp.Table{"x": "y"},
		amqp.Table{"x": struct{}{}}, map[string]any{"x": "y"}, []string{"s"}, struct{}{}, &struct{}{},
	}
	for _, v := range values {
		for _, h := range []amqp.Table{{"v": v}, {"a": []any{v}}, {"t": amqp.Table{"v": v}}} {
			validErr := h.Validate()
			checkErr := checkEncodable("x", "k", amqp.Publishing{Headers: h}, 131072)
			if (validErr == nil) != (checkErr == nil) {
				t.Errorf("%#v: Validate says %v, checkEncodable %v", h, validErr, checkErr)
			}
		}
	}
}
