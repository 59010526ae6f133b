package router

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// outMsg is one publish a stream makes for an event.
type outMsg struct {
	exchange string
	key      string
	msg      amqp.Publishing
	emitted  bool // made by the route's handler, not the event itself
}

// messagesFor builds what target receives for one event: the event after transforms when the
// target is one of the route's own, and every event the handler emitted to it.
func messagesFor(r *Route, tgt *config.TargetSpec, orig *event.Event, d *Decision, replay bool, dst []outMsg) []outMsg {
	if r.HasTarget(tgt.Name) {
		ev := d.Event
		msg := amqpx.Publishing(ev)
		msg.Headers = routerHeaders(msg.Headers, r.Spec.Name, orig, replay)
		dst = append(dst, outMsg{exchange: tgt.Exchange, key: targetKey(tgt, ev.RoutingKey), msg: msg})
	}
	for i, em := range d.Emits {
		if em.Target != tgt.Name {
			continue
		}
		msg := amqp.Publishing{
			Headers:      routerHeaders(nil, r.Spec.Name, orig, replay),
			ContentType:  orig.Props.ContentType,
			DeliveryMode: amqp.Persistent,
			MessageId:    EmittedMessageID(orig.Props.MessageID, r.Spec.Name, i),
			Timestamp:    orig.Props.Timestamp,
			Body:         em.Body,
		}
		dst = append(dst, outMsg{exchange: tgt.Exchange, key: targetKey(tgt, em.RoutingKey), msg: msg, emitted: true})
	}
	return dst
}

// deadLetterMessage is what a dead_letter target receives: the event as it was logged, with the
// reason and the tries made.
func deadLetterMessage(route string, ev *event.Event, reason string, attempts int, replay bool) amqp.Publishing {
	msg := amqpx.Publishing(ev)
	msg.Headers = routerHeaders(msg.Headers, route, ev, replay)
	msg.Headers[event.HeaderError] = reason
	msg.Headers[event.HeaderAttempts] = int32(attempts)
	return msg
}

// routerHeaders adds the x-router-* headers to h (a copy of the event's, owned by the caller).
func routerHeaders(h amqp.Table, route string, orig *event.Event, replay bool) amqp.Table {
	if h == nil {
		h = make(amqp.Table, 4)
	}
	h[event.HeaderRoute] = route
	h[event.HeaderSource] = orig.Source
	h[event.HeaderSeq] = int64(orig.Seq)
	if replay {
		h[event.HeaderReplay] = true
	} else {
		delete(h, event.HeaderReplay)
	}
	return h
}

func targetKey(tgt *config.TargetSpec, key string) string {
	if tgt.RoutingKey != "" {
		return tgt.RoutingKey
	}
	return key
}

// EmittedMessageID derives the message id of the index-th event a handler emitted for a parent,
// so that a retry or a replay emits the same ids and consumers can deduplicate.
func EmittedMessageID(parentID, route string, index int) string {
	h := sha256.New()
	h.Write([]byte(parentID))
	h.Write([]byte{0})
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(index)))
	return "wr-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// AssignedMessageID is the id the router gives a message that arrived without one, fixed when
// the event is logged. Deliveries only ever come from the log, so the id is stable across
// redeliveries and replays; the ingest time tells apart identical messages published twice
// (Celery sends identical bodies for identical arguments).
func AssignedMessageID(fp [16]byte, ingest time.Time) string {
	return "wr-" + hex.EncodeToString(fp[:10]) + "-" + strconv.FormatInt(ingest.UnixNano(), 36)
}
