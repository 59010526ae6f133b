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
