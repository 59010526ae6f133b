package amqpx

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// checkEncodable finds what would make a message fail to encode or make the broker close the
// connection, before anything is written: the client writes the publish method before it
// encodes the headers, and a content header frame larger than frame_max is a connection
// error. Either would turn one bad message into an outage of every stream on the connection;
// caught here, it is a refusal of that message (retried, then dead-lettered).
func checkEncodable(exchange, key string, msg amqp.Publishing, frameMax int) error {
	if len(exchange) > 255 || len(key) > 255 {
		return fmt.Errorf("exchange or routing key over 255 bytes")
	}
	for _, s := range []string{msg.ContentType, msg.ContentEncoding, msg.CorrelationId, msg.ReplyTo,
		msg.Expiration, msg.MessageId, msg.Type, msg.UserId, msg.AppId} {
		if len(s) > 255 {
			return fmt.Errorf("a message property over 255 bytes")
		}
	}
	size, err := tableSize(msg.Headers, 0)
	if err != nil {
		return err
	}
	size += len(msg.EncodedHeaders) // checked as they were encoded (store.AppendAMQPHeaders)
	// class, weight, body size, flags, the short strings and the fixed properties.
	size += 14 + 9*256 + 2 + 8 + 8
	if frameMax > 0 && size > frameMax-8 {
		return fmt.Errorf("headers of %d bytes do not fit in a frame of %d bytes (frame_max)", size, frameMax)
	}
	return nil
}

// tableSize is the encoded size of a table, length prefix included.
func tableSize(t amqp.Table, depth int) (int, error) {
	if depth > clientMaxFieldDepth {
		return 0, fmt.Errorf("headers nested deeper than %d levels", clientMaxFieldDepth)
	}
	n := 4
	for k, v := range t {
		if len(k) > 255 {
			return 0, fmt.Errorf("header name of %d bytes (at most 255)", len(k))
		}
		m, err := fieldSize(v, depth)
		if err != nil {
			return 0, err
		}
		n += 1 + len(k) + m
	}
	return n, nil
}

func fieldSize(v any, depth int) (int, error) {
	switch x := v.(type) {
	case bool, byte, int8, nil:
		if v == nil {
			return 1, nil
		}
		return 2, nil
	case int16, uint16:
		return 3, nil
	case int, int32, uint32, float32:
		return 5, nil
	case int64, float64, time.Time:
		return 9, nil
	case amqp.Decimal:
		return 6, nil
	case string:
		return 5 + len(x), nil
	case []byte:
		return 5 + len(x), nil
	case []any:
		if depth+1 > clientMaxFieldDepth {
			return 0, fmt.Errorf("headers nested deeper than %d levels", clientMaxFieldDepth)
		}
		n := 5
		for _, e := range x {
			m, err := fieldSize(e, depth+1)
			if err != nil {
				return 0, err
			}
			n += m
		}
		return n, nil
	case amqp.Table:
		m, err := tableSize(x, depth+1)
		return 1 + m, err
	default:
		return 0, fmt.Errorf("header value of type %T", v)
	}
}
