package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// amqpMaxDepth is the deepest nesting AppendAMQPHeaders encodes; a deeper table is left to the
// publisher's own encoding and checks (which refuse past 32 levels), as are keys over 255
// bytes: the caller encodes the decoded table instead.
const amqpMaxDepth = 16

// errNotTranscoded is AppendAMQPHeaders' answer for a table it leaves to the caller.
var errNotTranscoded = errors.New("table not encodable from the log's bytes")

// AppendAMQPHeaders appends to dst the entries of a header table as AMQP 0-9-1 encodes a field
// table (without the table's length), read from logged: the table as a record holds it
// (event.Event.LoggedHeaders). Entries whose name skip reports are left out. The values keep
// their types: the log's tags are AMQP's field types, and fixed-width values have AMQP's
// widths and byte order, so they are copied; strings, byte arrays, nested tables and arrays
// get AMQP's 32-bit lengths; a timestamp keeps its seconds, as AMQP's does. The result is
// what amqp091-go writes for the decoded table, entry for entry (a map's entries in another
// order). On an error dst is returned unchanged and the caller encodes the decoded table.
//
// Why: a replay of a route without modules publishes each event's headers unchanged but for
// the router's own, and decoding them into a map, copying that map with the router's
// entries and encoding it again was about a tenth of a replay's CPU (BENCHMARKS.md, "Replay
// from the log's header bytes").
func AppendAMQPHeaders(dst, logged []byte, skip func(name []byte) bool) ([]byte, error) {
	d := decoder{b: logged}
	out, err := transcodeEntries(dst, &d, 0, skip)
	if err == nil && d.err == nil && len(d.b) > 0 {
		err = fmt.Errorf("%w: trailing bytes", ErrCorrupt)
	}
	if err == nil {
		err = d.err
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

// AppendAMQPHeaders is the package's AppendAMQPHeaders, for the engine, which knows the log
// only by its methods.
func (s *Store) AppendAMQPHeaders(dst, logged []byte, skip func(name []byte) bool) ([]byte, error) {
	return AppendAMQPHeaders(dst, logged, skip)
}

// transcodeEntries reads a table (its count, then its entries) and appends its entries.
func transcodeEntries(dst []byte, d *decoder, depth int, skip func([]byte) bool) ([]byte, error) {
	n := d.uvarint()
	if n > uint64(len(d.b))/2 {
		return dst, fmt.Errorf("%w: table count beyond end", ErrCorrupt)
	}
	var err error
	var prev []byte
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.bytes()
		if i > 0 && bytes.Compare(k, prev) <= 0 {
			return dst, fmt.Errorf("%w: table keys not in ascending order", ErrCorrupt)
		}
		prev = k
		if len(k) > 255 {
			return dst, errNotTranscoded
		}
		if skip != nil && depth == 0 && skip(k) {
			d.skipValue(depth)
			continue
		}
		dst = append(dst, byte(len(k)))
		dst = append(dst, k...)
		if dst, err = transcodeValue(dst, d, depth); err != nil {
			return dst, err
		}
	}
	return dst, d.err
}

// fixedWidth is the payload size of the tags whose payload the log and AMQP encode alike.
func fixedWidth(tag byte) int {
	switch tag {
	case tagNil:
		return 0
	case tagBool, tagInt8, tagUint8:
		return 1
	case tagInt16, tagUint16:
		return 2
	case tagInt32, tagUint32, tagFloat32:
		return 4
	case tagDecimal:
		return 5
	case tagInt64, tagFloat64:
		return 8
	}
	return -1
}

func transcodeValue(dst []byte, d *decoder, depth int) ([]byte, error) {
	tag := d.byte()
	if w := fixedWidth(tag); w >= 0 {
		p := d.fixed(w)
		if d.err != nil {
			return dst, d.err
		}
		if tag == tagBool && p[0] > 1 {
			return dst, fmt.Errorf("%w: bad bool", ErrCorrupt)
		}
		dst = append(dst, tag)
		return append(dst, p...), nil
	}
	be := binary.BigEndian
	switch tag {
	case tagString, tagBytes:
		b := d.bytes()
		dst = be.AppendUint32(append(dst, tag), uint32(len(b)))
		return append(dst, b...), d.err
	case tagTime:
		t := d.time()
		return be.AppendUint64(append(dst, tagTime), uint64(t.Unix())), d.err
	case tagTable, tagArray:
		if depth+1 > amqpMaxDepth {
			return dst, errNotTranscoded
		}
		dst = append(dst, tag, 0, 0, 0, 0)
		at := len(dst)
		var err error
		if tag == tagTable {
			dst, err = transcodeEntries(dst, d, depth+1, nil)
		} else {
			dst, err = transcodeArray(dst, d, depth+1)
		}
		if err != nil {
			return dst, err
		}
		be.PutUint32(dst[at-4:at], uint32(len(dst)-at))
		return dst, nil
	}
	return dst, fmt.Errorf("%w: unknown value type", ErrCorrupt)
}

func transcodeArray(dst []byte, d *decoder, depth int) ([]byte, error) {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return dst, fmt.Errorf("%w: array count beyond end", ErrCorrupt)
	}
	var err error
	for i := uint64(0); i < n && d.err == nil; i++ {
		if dst, err = transcodeValue(dst, d, depth); err != nil {
			return dst, err
		}
	}
	return dst, d.err
}
