package router

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// outMsg is one publish a stream makes for an event.
type outMsg struct {
	msg     event.Message
	emitted bool // made by the route's handler, not the event itself
}

// messagesFor builds what target receives for one event: the event after transforms when the
// target is one of the route's own, and every event the handler emitted to it.
func messagesFor(r *Route, tgt *config.TargetSpec, orig *event.Event, d *Decision, replay bool, dst []outMsg) []outMsg {
	if r.HasTarget(tgt.Name) {
		ev := d.Event
		dst = append(dst, outMsg{msg: event.Message{
			Exchange:   tgt.Exchange,
			RoutingKey: targetKey(tgt, ev.RoutingKey),
			Props:      ev.Props,
			Headers:    r.routerHeaders(ev.Headers, orig, replay),
			Body:       ev.Body,
		}})
	}
	for i := range d.Emits {
		if d.Emits[i].Target == tgt.Name {
			dst = append(dst, emittedMessage(r, tgt, orig, d, i, replay))
		}
	}
	return dst
}

// emittedMessage is the publish of the index-th event the route's handler emitted, with the
// headers the handler set or copied (emit_header_set, emit_headers_copy), if any.
func emittedMessage(r *Route, tgt *config.TargetSpec, orig *event.Event, d *Decision, index int, replay bool) outMsg {
	em := &d.Emits[index]
	return outMsg{emitted: true, msg: event.Message{
		Exchange:   tgt.Exchange,
		RoutingKey: targetKey(tgt, em.RoutingKey),
		Props: event.Properties{
			ContentType:  orig.Props.ContentType,
			DeliveryMode: persistent,
			MessageID:    EmittedMessageID(orig.Props.MessageID, r.Spec.Name, index),
			Timestamp:    orig.Props.Timestamp,
		},
		Headers: r.routerHeaders(em.Headers, orig, replay),
		Body:    em.Body,
	}}
}

// buildMessages is messagesFor with a panic turned into this event's failure.
// They are appended to dst.
func buildMessages(r *Route, tgt *config.TargetSpec, orig *event.Event, d *Decision, replay bool, dst []outMsg) (msgs []outMsg, err error) {
	defer func() {
		if p := recover(); p != nil {
			msgs, err = nil, fmt.Errorf("building the messages for target %s: panic: %v", tgt.Name, p)
		}
	}()
	return messagesFor(r, tgt, orig, d, replay, dst), nil
}

// persistent is the delivery mode of a message the broker writes to disk.
const persistent = 2

// deadLetterMessage is what a dead_letter target receives: the event as it was logged, with the
// reason and the tries made.
func deadLetterMessage(exchange, route string, ev *event.Event, reason string, attempts int) event.Message {
	h := routerHeaders(ev.Headers, route, ev, false)
	h[event.HeaderError] = reason
	h[event.HeaderAttempts] = int32(attempts)
	return event.Message{Exchange: exchange, RoutingKey: ev.RoutingKey, Props: ev.Props, Headers: h, Body: ev.Body}
}

// routerHeaders is a copy of h (shallow: nested values are shared, never changed) with the
// x-router-* headers added.
func routerHeaders(h event.Table, route string, orig *event.Event, replay bool) event.Table {
	return withRouterHeaders(h, route, orig.Source, orig, replay)
}

// routerHeaders is routerHeaders for the route's own messages, with the name and (usually) the
// source boxed once.
func (r *Route) routerHeaders(h event.Table, orig *event.Event, replay bool) event.Table {
	var name, source any
	if r.nameValue != nil {
		name = r.nameValue
	} else {
		name = r.Spec.Name
	}
	if r.sourceValue != nil && orig.Source == r.Spec.Source {
		source = r.sourceValue
	} else {
		source = orig.Source
	}
	return withRouterHeaders(h, name, source, orig, replay)
}

func withRouterHeaders(h event.Table, route, source any, orig *event.Event, replay bool) event.Table {
	var out event.Table
	if p, ok := headerTables.Get().(*event.Table); ok {
		out = *p
		*p = nil
		tablePtrs.Put(p)
	} else {
		out = make(event.Table, len(h)+4)
	}
	for k, v := range h {
		out[k] = v
	}
	out[event.HeaderRoute] = route
	out[event.HeaderSource] = source
	out[event.HeaderSeq] = int64(orig.Seq)
	if replay {
		out[event.HeaderReplay] = true
	} else {
		delete(out, event.HeaderReplay)
	}
	return out
}

// headerTables keeps the header tables of settled messages for the next ones: a table per
// publish was two allocations (the map and its slots), and a stream lets go of one as soon as
// its message is confirmed (freeHeaderTable). tablePtrs recycles the pointers the pool holds
// them by.
var headerTables, tablePtrs sync.Pool

// maxPooledHeaders bounds the tables kept: a message with many headers leaves a large table
// that should not stay behind for small ones.
const maxPooledHeaders = 16

// freeHeaderTable gives back the header table of a message made by routerHeaders that nothing
// holds any more: the stream's window, which owns it, has settled the message, and a Publisher
// does not keep a message's headers past its Publish (router.Publisher).
func freeHeaderTable(t event.Table) {
	if t == nil || len(t) > maxPooledHeaders {
		return
	}
	clear(t)
	p, ok := tablePtrs.Get().(*event.Table)
	if !ok {
		p = new(event.Table)
	}
	*p = t
	headerTables.Put(p)
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
