package router

import (
	"encoding/binary"
	"fmt"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// headerEncoder is a log that encodes a header table for AMQP straight from the bytes it
// logged it as (event.Event.LoggedHeaders; store.AppendAMQPHeaders), leaving out the entries
// skip names.
type headerEncoder interface {
	AppendAMQPHeaders(dst, logged []byte, skip func(name []byte) bool) ([]byte, error)
}

// encodedHeadersPublisher is a publisher that sends event.Message.EncodedHeaders as they are.
type encodedHeadersPublisher interface{ TakesEncodedHeaders() bool }

// rawHeadersScanner is a log that can leave the header tables of the events a stream reads
// from its file undecoded, in LoggedHeaders (store.Store.ScanBoundedRawHeaders), and decode
// one later where it is needed after all.
type rawHeadersScanner interface {
	ScanBoundedRawHeaders(from uint64, limit, maxBytes int, keep event.Keep, fn func(*event.Event) bool) (next uint64, err error)
	DecodeLoggedHeaders(logged []byte) (event.Table, error)
}

// chunkScanner is a rawHeadersScanner that reads the events into chunks the caller gives
// back once it let go of all of them (store.Store.ScanBoundedRawHeadersIn), to be read into
// again instead of allocated.
type chunkScanner interface {
	ScanBoundedRawHeadersIn(chunks *[][]byte, from uint64, limit, maxBytes int, keep event.Keep, fn func(*event.Event) bool) (next uint64, err error)
	RecycleChunks(chunks *[][]byte)
}

// encodesLoggedHeaders reports whether every message of this stream for route r can be
// encoded from the log's bytes (loggedMessage), so that the log need not decode the header
// tables it reads for it: a route without modules (whose decisions never look at the
// headers), no tracer (which reads traceparent from them), no dry run, and a publisher and a
// log that can do it. An event that takes messagesFor's path all the same has its table
// decoded first (decodeHeaders).
func (s *stream) encodesLoggedHeaders(r *Route) bool {
	if _, ok := s.headerEncoderFor(r); !ok {
		return false
	}
	_, ok := s.e.store.(rawHeadersScanner)
	return ok
}

// headerEncoderFor is the log's header encoder when this stream's messages for route r may be
// encoded from the log's bytes: a route without modules, no tracer, no dry run, and a
// publisher that sends encoded headers as they are.
func (s *stream) headerEncoderFor(r *Route) (headerEncoder, bool) {
	if r.hasModules() || s.dryRun || s.e.tracer != nil {
		return nil, false
	}
	if p, ok := s.pub.(encodedHeadersPublisher); !ok || !p.TakesEncodedHeaders() {
		return nil, false
	}
	enc, ok := s.e.store.(headerEncoder)
	return enc, ok
}

// decodeHeaders decodes the header table the log left undecoded in ev, if it did.
func (s *stream) decodeHeaders(ev *event.Event) error {
	if ev.Headers != nil || len(ev.LoggedHeaders) == 0 {
		return nil
	}
	rs, ok := s.e.store.(rawHeadersScanner)
	if !ok {
		return fmt.Errorf("seq %d: headers left undecoded by a log that cannot decode them", ev.Seq)
	}
	h, err := rs.DecodeLoggedHeaders(ev.LoggedHeaders)
	if err != nil {
		return fmt.Errorf("seq %d: %w", ev.Seq, err)
	}
	ev.Headers = h
	return nil
}

// loggedMessage builds the message of an event a route without modules delivers to one of
// its own targets, with the headers encoded from the log's bytes and the router's entries
// appended: the message messagesFor builds (the same entries, types and values; only their
// order differs, as it does between two encodings of a map), without decoding the table
// into a map, copying it with the router's entries and walking it twice more to check and
// encode it (BENCHMARKS.md, "Replay from the log's header bytes"). ok is false where that
// does not apply: the event came from memory, not the log; a module or a tracer (which adds
// traceparent to the headers) is involved; the publisher or the log cannot do it; or the
// table is one the log leaves to the map's encoding. Then messagesFor builds it.
func (s *stream) loggedMessage(r *Route, tgt *config.TargetSpec, ev *event.Event, d *Decision) (outMsg, bool) {
	if len(ev.LoggedHeaders) == 0 || d.Event != ev || len(d.Emits) > 0 || !r.HasTarget(tgt.Name) {
		return outMsg{}, false
	}
	enc, ok := s.headerEncoderFor(r)
	if !ok {
		return outMsg{}, false
	}
	route := r.Spec.Name
	dst := make([]byte, 0, len(ev.LoggedHeaders)+len(ev.LoggedHeaders)/2+96+len(route)+len(ev.Source))
	dst, err := enc.AppendAMQPHeaders(dst, ev.LoggedHeaders, setByRouter)
	if err != nil {
		return outMsg{}, false
	}
	dst = appendRouterEntries(dst, route, ev.Source, ev.Seq, s.replay)
	return outMsg{msg: event.Message{
		Exchange:       tgt.Exchange,
		RoutingKey:     targetKey(tgt, ev.RoutingKey),
		Props:          ev.Props,
		Body:           ev.Body,
		EncodedHeaders: dst,
	}}, true
}

// setByRouter names the logged entries withRouterHeaders replaces or removes.
func setByRouter(name []byte) bool {
	switch string(name) {
	case event.HeaderRoute, event.HeaderSource, event.HeaderSeq, event.HeaderReplay:
		return true
	}
	return false
}

// appendRouterEntries appends the x-router-* entries withRouterHeaders sets, as AMQP encodes
// them: the route and the source as long strings, the seq as an int64, replay as a boolean.
func appendRouterEntries(dst []byte, route, source string, seq uint64, replay bool) []byte {
	dst = appendLongString(dst, event.HeaderRoute, route)
	dst = appendLongString(dst, event.HeaderSource, source)
	dst = appendShortString(dst, event.HeaderSeq)
	dst = binary.BigEndian.AppendUint64(append(dst, 'l'), seq)
	if replay {
		dst = append(appendShortString(dst, event.HeaderReplay), 't', 1)
	}
	return dst
}

func appendShortString(dst []byte, s string) []byte {
	return append(append(dst, byte(len(s))), s...)
}

func appendLongString(dst []byte, name, value string) []byte {
	dst = appendShortString(dst, name)
	dst = binary.BigEndian.AppendUint32(append(dst, 'S'), uint32(len(value)))
	return append(dst, value...)
}
