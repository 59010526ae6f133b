package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// Record layout, version 1. Fixed-width integers are big-endian; "string" is a uvarint length
// followed by the bytes. The seq is the record's key and not part of the value.
//
//	version       1 byte (recordVersion)
//	ingest time   8 bytes, Unix nanoseconds (math.MinInt64 for the zero time)
//	fingerprint   16 bytes (kept so that deleting the record can delete its index entry)
//	source        string   } the fixed part and these two are all that peek reads
//	routing key   string   }
//	exchange      string
//	properties    content type, content encoding (strings); delivery mode, priority (1 byte each);
//	              correlation id, reply to, expiration, message id (strings);
//	              timestamp (flag byte 0 absent / 1 present, then varint seconds, uvarint nanos);
//	              type, user id, app id (strings)
//	headers       table (see codec_value.go)
//	body          uvarint length + bytes
//
// Decoding is strict: it rejects anything the encoder would not produce (overlong varints,
// unsorted or repeated keys, flags other than 0/1, trailing bytes), so corruption surfaces as
// ErrCorrupt and encode(decode(b)) == b for every b that decodes.
const (
	recordVersion = 1
	fixedLen      = 1 + 8 + len(Fingerprint{})
	zeroTimeNanos = math.MinInt64
)

// appendRecord appends the encoding of ev (which carries fingerprint fp) to dst.
func appendRecord(dst []byte, ev *event.Event, fp Fingerprint) ([]byte, error) {
	dst, _, err := appendRecordAt(dst, ev, fp)
	return dst, err
}

// recordParts are where a record's fields start, as offsets in the slice appendRecordAt
// returned: the fingerprint is a hash of these same bytes in another order (fingerprint.go).
type recordParts struct{ fp, source, routingKey, exchange, props int }

// appendRecordAt is appendRecord that also tells where the fields start.
func appendRecordAt(dst []byte, ev *event.Event, fp Fingerprint) ([]byte, recordParts, error) {
	var at recordParts
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ingestNanos(ev.IngestTime)))
	at.fp = len(dst)
	dst = append(dst, fp[:]...)
	at.source = len(dst)
	dst = appendString(dst, ev.Source)
	at.routingKey = len(dst)
	dst = appendString(dst, ev.RoutingKey)
	at.exchange = len(dst)
	dst = appendString(dst, ev.Exchange)
	at.props = len(dst)
	dst = appendProps(dst, &ev.Props)
	dst, err := appendTable(dst, ev.Headers, 1, true)
	if err != nil {
		return nil, at, err
	}
	dst = binary.AppendUvarint(dst, uint64(len(ev.Body)))
	return append(dst, ev.Body...), at, nil
}

// recordSizeHint estimates the encoded size of ev, so that one allocation usually suffices.
func recordSizeHint(ev *event.Event) int {
	p := &ev.Props
	n := fixedLen + 64 + len(ev.Source) + len(ev.RoutingKey) + len(ev.Exchange) + len(ev.Body)
	n += len(p.ContentType) + len(p.ContentEncoding) + len(p.CorrelationID) + len(p.ReplyTo) +
		len(p.Expiration) + len(p.MessageID) + len(p.Type) + len(p.UserID) + len(p.AppID)
	return n + 32*len(ev.Headers)
}

func ingestNanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroTimeNanos
	}
	return t.UnixNano()
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

func appendProps(dst []byte, p *event.Properties) []byte {
	dst = appendString(dst, p.ContentType)
	dst = appendString(dst, p.ContentEncoding)
	dst = append(dst, p.DeliveryMode, p.Priority)
	dst = appendString(dst, p.CorrelationID)
	dst = appendString(dst, p.ReplyTo)
	dst = appendString(dst, p.Expiration)
	dst = appendString(dst, p.MessageID)
	if p.Timestamp.IsZero() {
		dst = append(dst, 0)
	} else {
		dst = appendTime(append(dst, 1), p.Timestamp)
	}
	dst = appendString(dst, p.Type)
	dst = appendString(dst, p.UserID)
	return appendString(dst, p.AppID)
}

// decodeRecord decodes a record stored under seq. The event shares no memory with b.
//
// The record is copied once and the event's strings and body point into the copy: one
// allocation where a string and a body copy each were one (15 for the benchmark's event), which
// made decoding and collecting the garbage a large part of what a replay or a stream reading the
// log costs per event. The copy is never written to, and the body is capped at its length, so
// that an append to it cannot reach the bytes the strings share.
func decodeRecord(b []byte, seq uint64) (*event.Event, Fingerprint, error) {
	return decodeRecordIn(b, seq, nil)
}

// decodeRecordIn is decodeRecord with the copy taken from a (nil: a copy of its own).
func decodeRecordIn(b []byte, seq uint64, a *recordArena) (*event.Event, Fingerprint, error) {
	var fp Fingerprint
	var own []byte
	if a != nil {
		own = a.copy(b)
	} else {
		own = append([]byte(nil), b...)
	}
	d := decoder{b: own, owned: true}
	if v := d.byte(); d.err == nil && v != recordVersion {
		return nil, fp, fmt.Errorf("%w: unknown record version %d", ErrCorrupt, v)
	}
	nanos := int64(binary.BigEndian.Uint64(d.fixed(8)))
	copy(fp[:], d.fixed(len(fp)))
	ev := &event.Event{Seq: seq}
	if nanos != zeroTimeNanos {
		ev.IngestTime = time.Unix(0, nanos).UTC()
	}
	ev.Source = d.string()
	ev.RoutingKey = d.string()
	ev.Exchange = d.string()
	d.props(&ev.Props)
	table := d.b
	var entries uint64
	if a != nil && a.rawHeaders {
		entries = d.skipTable(1)
	} else if t := d.table(1); len(t) > 0 {
		ev.Headers, entries = t, uint64(len(t))
	}
	if a != nil && entries > 0 {
		// A delivery stream's read: its messages may be encoded from these bytes, which the
		// copy keeps (AppendAMQPHeaders).
		n := len(table) - len(d.b)
		ev.LoggedHeaders = table[:n:n]
	}
	if body := d.bytes(); len(body) > 0 {
		ev.Body = body[:len(body):len(body)]
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fp, d.err
	}
	return ev, fp, nil
}

// peekRecord returns the source and routing key of a record without decoding the rest. The
// slices alias b.
func peekRecord(b []byte) (source, routingKey []byte, err error) {
	if len(b) < fixedLen || b[0] != recordVersion {
		return nil, nil, fmt.Errorf("%w: bad record header", ErrCorrupt)
	}
	d := decoder{b: b[fixedLen:]}
	source = d.bytes()
	routingKey = d.bytes()
	return source, routingKey, d.err
}

// peekMeta returns a record's ingest time (Unix nanoseconds, math.MinInt64 for none) and
// fingerprint, which retention needs.
func peekMeta(b []byte) (ingest int64, fp Fingerprint, err error) {
	if len(b) < fixedLen || b[0] != recordVersion {
		return 0, fp, fmt.Errorf("%w: bad record header", ErrCorrupt)
	}
	copy(fp[:], b[9:fixedLen])
	return int64(binary.BigEndian.Uint64(b[1:9])), fp, nil
}

func (d *decoder) props(p *event.Properties) {
	p.ContentType = d.string()
	p.ContentEncoding = d.string()
	p.DeliveryMode = d.byte()
	p.Priority = d.byte()
	p.CorrelationID = d.string()
	p.ReplyTo = d.string()
	p.Expiration = d.string()
	p.MessageID = d.string()
	switch d.byte() {
	case 0:
	case 1:
		p.Timestamp = d.time()
		if p.Timestamp.IsZero() {
			d.fail("present timestamp is the zero time")
		}
	default:
		d.fail("bad timestamp flag")
	}
	p.Type = d.string()
	p.UserID = d.string()
	p.AppID = d.string()
}

// recordArena hands out the copies of the records one bounded scan decodes from a few shared
// chunks instead of one allocation each: that allocation alone was about 3.5% of a replay's
// CPU, besides its share of the collector's (BENCHMARKS.md, "Replay's cursor and refills"). A
// chunk lives as long as any event of it does; a stream keeps the events of a scan together
// and lets them go in order, and each chunk is sized to what the scan's bound leaves, so
// little more is held than the events themselves. Copies are capped at their length: an
// append to one cannot reach its neighbour's bytes.
type recordArena struct {
	buf []byte
	// rawHeaders: the scan leaves header tables undecoded (ScanBoundedRawHeaders).
	rawHeaders bool
	// want is about how many more bytes the scan may copy (its bound's rest), the size of
	// a new chunk when below arenaChunk.
	want int
	// chunks, when set, takes every chunk from arenaChunks, full-sized, and records it, so
	// that the caller can give them back (Store.RecycleChunks) once nothing refers to the
	// events decoded into them (ScanBoundedRawHeadersIn).
	chunks *[][]byte
}

// arenaChunk is the largest chunk; a record above a quarter of it gets a copy of its own.
const arenaChunk = 64 << 10

// arenaChunks holds the chunks given back, for the next scans of any stream: a stream
// that encodes its messages from the log's bytes lets go of its events once their messages
// are written, so their chunks can serve the next read instead of being collected
// (BENCHMARKS.md, "Memory", "The window lets go of what it published from the log"). A pool,
// so that what no stream reads any more goes with the collections.
var arenaChunks, chunkPtrs sync.Pool

// RecycleChunks gives back the chunks a ScanBoundedRawHeadersIn recorded, which the caller
// guarantees nothing refers to any more (no event decoded into them, nor any part of one).
// It empties chunks.
func (s *Store) RecycleChunks(chunks *[][]byte) {
	for i, c := range *chunks {
		p, ok := chunkPtrs.Get().(*[]byte)
		if !ok {
			p = new([]byte)
		}
		*p = c[:0]
		arenaChunks.Put(p)
		(*chunks)[i] = nil
	}
	*chunks = (*chunks)[:0]
}

func (a *recordArena) newChunk(n int) []byte {
	if a.chunks == nil {
		return make([]byte, 0, n)
	}
	var c []byte
	if p, ok := arenaChunks.Get().(*[]byte); ok {
		c = *p
		*p = nil
		chunkPtrs.Put(p)
	} else {
		c = make([]byte, 0, arenaChunk)
	}
	*a.chunks = append(*a.chunks, c)
	return c
}

// copy returns a copy of b, from the current chunk or from a new one of about want bytes.
func (a *recordArena) copy(b []byte) []byte {
	if len(b) > arenaChunk/4 {
		return append([]byte(nil), b...)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = a.newChunk(min(arenaChunk, max(len(b), a.want)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}
