package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/wasmrouter/wasmrouter/event"
)

// maxDepth bounds the nesting of tables and arrays, on encode as on decode, so that hostile
// input cannot exhaust the stack and a self-referencing table cannot loop.
const maxDepth = 64

// A table is a uvarint count, then each entry as key (string, in strictly ascending order)
// and value. A value is a tag byte (the AMQP field type letter) and its payload:
// fixed-width big-endian integers and floats, decimal as scale byte and int32, strings and
// byte arrays as uvarint length and bytes, times as varint seconds and uvarint nanoseconds,
// arrays as uvarint count and values, tables as above.
const (
	tagNil     = 'V'
	tagBool    = 't'
	tagInt8    = 'b'
	tagUint8   = 'B'
	tagInt16   = 's'
	tagUint16  = 'u'
	tagInt32   = 'I'
	tagUint32  = 'i'
	tagInt64   = 'l'
	tagFloat32 = 'f'
	tagFloat64 = 'd'
	tagDecimal = 'D'
	tagString  = 'S'
	tagBytes   = 'x'
	tagTime    = 'T'
	tagTable   = 'F'
	tagArray   = 'A'
	tagOther   = '?' // fingerprints only: a value of a type a record cannot hold
)

// appendTable encodes t with its keys sorted. With strict unset (fingerprints) values of
// unsupported types and excess nesting are folded in as text instead of failing.
func appendTable(dst []byte, t event.Table, depth int, strict bool) ([]byte, error) {
	if depth > maxDepth {
		return tooDeep(dst, strict)
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	var err error
	for _, k := range keys {
		dst = appendString(dst, k)
		if dst, err = appendValue(dst, t[k], depth, strict); err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
	}
	return dst, nil
}

func tooDeep(dst []byte, strict bool) ([]byte, error) {
	if strict {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrUnsupported, maxDepth)
	}
	return appendString(append(dst, tagOther), "too deep"), nil
}

func appendValue(dst []byte, v any, depth int, strict bool) ([]byte, error) {
	be := binary.BigEndian
	switch x := v.(type) {
	case nil:
		return append(dst, tagNil), nil
	case bool:
		if x {
			return append(dst, tagBool, 1), nil
		}
		return append(dst, tagBool, 0), nil
	case int8:
		return append(dst, tagInt8, byte(x)), nil
	case uint8:
		return append(dst, tagUint8, x), nil
	case int16:
		return be.AppendUint16(append(dst, tagInt16), uint16(x)), nil
	case uint16:
		return be.AppendUint16(append(dst, tagUint16), x), nil
	case int32:
		return be.AppendUint32(append(dst, tagInt32), uint32(x)), nil
	case uint32:
		return be.AppendUint32(append(dst, tagUint32), x), nil
	case int64:
		return be.AppendUint64(append(dst, tagInt64), uint64(x)), nil
	case float32:
		return be.AppendUint32(append(dst, tagFloat32), math.Float32bits(x)), nil
	case float64:
		return be.AppendUint64(append(dst, tagFloat64), math.Float64bits(x)), nil
	case event.Decimal:
		return be.AppendUint32(append(dst, tagDecimal, x.Scale), uint32(x.Value)), nil
	case string:
		return appendString(append(dst, tagString), x), nil
	case []byte:
		dst = binary.AppendUvarint(append(dst, tagBytes), uint64(len(x)))
		return append(dst, x...), nil
	case time.Time:
		return appendTime(append(dst, tagTime), x), nil
	case event.Table:
		return appendTable(append(dst, tagTable), x, depth+1, strict)
	case []any:
		if depth+1 > maxDepth {
			return tooDeep(dst, strict)
		}
		dst = binary.AppendUvarint(append(dst, tagArray), uint64(len(x)))
		var err error
		for i, e := range x {
			if dst, err = appendValue(dst, e, depth+1, strict); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return dst, nil
	}
	if strict {
		return nil, fmt.Errorf("%w: header value of type %T", ErrUnsupported, v)
	}
	return appendString(append(dst, tagOther), fmt.Sprintf("%T:%v", v, v)), nil
}

// decoder reads the encoding; its first failure sticks, later reads then return zero values.
type decoder struct {
	b   []byte
	err error
	// owned: b is the decoder's own copy, never written to, so strings may share its memory.
	owned bool
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail("truncated")
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte { return d.fixed(1)[0] }

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zigzag, as binary.Varint
}

// bytes reads a length-prefixed byte string; the result aliases the input.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length beyond end")
		return nil
	}
	return d.fixed(int(n))
}

func (d *decoder) string() string {
	b := d.bytes()
	if d.owned && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail("bad nanoseconds")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// table decodes a table; the count is checked against the remaining bytes (an entry takes at
// least two) and the map grows with the entries actually present, so allocation stays
// proportional to the input.
func (d *decoder) table(depth int) event.Table {
	if depth > maxDepth {
		d.fail("nesting too deep")
		return nil
	}
	n := d.uvarint()
	if n > uint64(len(d.b))/2 {
		d.fail("table count beyond end")
		return nil
	}
	t := make(event.Table, min(n, 64))
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.string()
		if i > 0 && k <= prev {
			d.fail("table keys not in ascending order")
			return nil
		}
		t[k] = d.value(depth)
		prev = k
	}
	return t
}

func (d *decoder) value(depth int) any {
	be := binary.BigEndian
	switch tag := d.byte(); tag {
	case tagNil:
		return nil
	case tagBool:
		switch d.byte() {
		case 0:
			return false
		case 1:
			return true
		}
		d.fail("bad bool")
		return nil
	case tagInt8:
		return int8(d.byte())
	case tagUint8:
		return d.byte()
	case tagInt16:
		return int16(be.Uint16(d.fixed(2)))
	case tagUint16:
		return be.Uint16(d.fixed(2))
	case tagInt32:
		return int32(be.Uint32(d.fixed(4)))
	case tagUint32:
		return be.Uint32(d.fixed(4))
	case tagInt64:
		return int64(be.Uint64(d.fixed(8)))
	case tagFloat32:
		return math.Float32frombits(be.Uint32(d.fixed(4)))
	case tagFloat64:
		return math.Float64frombits(be.Uint64(d.fixed(8)))
	case tagDecimal:
		scale := d.byte()
		return event.Decimal{Scale: scale, Value: int32(be.Uint32(d.fixed(4)))}
	case tagString:
		return d.string()
	case tagBytes:
		return append([]byte{}, d.bytes()...)
	case tagTime:
		return d.time()
	case tagTable:
		return d.table(depth + 1)
	case tagArray:
		return d.array(depth + 1)
	}
	d.fail("unknown value type")
	return nil
}

func (d *decoder) array(depth int) []any {
	if depth > maxDepth {
		d.fail("nesting too deep")
		return nil
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("array count beyond end")
		return nil
	}
	a := make([]any, 0, min(n, 256))
	for i := uint64(0); i < n && d.err == nil; i++ {
		a = append(a, d.value(depth))
	}
	return a
}

// skipTable reads past a table, checking it as table does without building it, and returns
// its count of entries.
func (d *decoder) skipTable(depth int) uint64 {
	if depth > maxDepth {
		d.fail("nesting too deep")
		return 0
	}
	n := d.uvarint()
	if n > uint64(len(d.b))/2 {
		d.fail("table count beyond end")
		return 0
	}
	var prev []byte
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.bytes()
		if i > 0 && string(k) <= string(prev) {
			d.fail("table keys not in ascending order")
			return 0
		}
		d.skipValue(depth)
		prev = k
	}
	return n
}

// skipValue reads past a value, checking it as value does.
func (d *decoder) skipValue(depth int) {
	switch tag := d.byte(); tag {
	case tagNil:
	case tagBool:
		if b := d.byte(); b > 1 {
			d.fail("bad bool")
		}
	case tagInt8, tagUint8:
		d.fixed(1)
	case tagInt16, tagUint16:
		d.fixed(2)
	case tagInt32, tagUint32, tagFloat32:
		d.fixed(4)
	case tagInt64, tagFloat64:
		d.fixed(8)
	case tagDecimal:
		d.fixed(5)
	case tagString, tagBytes:
		d.bytes()
	case tagTime:
		d.time()
	case tagTable:
		d.skipTable(depth + 1)
	case tagArray:
		if depth+1 > maxDepth {
			d.fail("nesting too deep")
			return
		}
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			d.fail("array count beyond end")
			return
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			d.skipValue(depth + 1)
		}
	default:
		d.fail("unknown value type")
	}
}
