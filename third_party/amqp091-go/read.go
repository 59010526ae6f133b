// Copyright (c) 2021 VMware, Inc. or its affiliates. All Rights Reserved.
// Copyright (c) 2012-2021, Sean Treadway, SoundCloud Ltd.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package amqp091

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"time"
)

/*
ReadFrame reads a frame from an input stream and returns an interface that can be cast into
one of the following:

	methodFrame
	PropertiesFrame
	bodyFrame
	heartbeatFrame

2.3.5  frame Details

All frames consist of a header (7 octets), a payload of arbitrary size, and a
'frame-end' octet that detects malformed frames:

	0      1         3             7                  size+7 size+8
	+------+---------+-------------+  +------------+  +-----------+
	| type | channel |     size    |  |  payload   |  | frame-end |
	+------+---------+-------------+  +------------+  +-----------+
	 octet   short         long         size octets       octet

To read a frame, we:
 1. Read the header and check the frame type and channel.
 2. Depending on the frame type, we read the payload and process it.
 3. Read the frame end octet.

In realistic implementations where performance is a concern, we would use
“read-ahead buffering” or

“gathering reads” to avoid doing three separate system calls to read a frame.
*/
func (r *reader) ReadFrame() (frame frame, err error) {
	if _, err = io.ReadFull(r.r, r.head[:7]); err != nil {
		return
	}

	typ := r.head[0]
	channel := binary.BigEndian.Uint16(r.head[1:3])
	size := binary.BigEndian.Uint32(r.head[3:7])

	if r.maxFrameSize != nil {
		// max-frameHeaderSize is safe from underflow only because maxFrameSize,
		// whenever nonzero, is always negotiateFrameSize's floor (frameMinSize,
		// 4096) or higher — see the Store call at Connection.openTune.
		if max := r.maxFrameSize.Load(); max > 0 && size > (max-frameHeaderSize) {
			return nil, ErrFrameTooLarge
		}
	}

	switch typ {
	case frameMethod, frameHeader, frameBody:
		// Patched: the payload and the frame-end octet are read at once into the reader's
		// buffer, then decoded from it (README.md in this directory).

	case frameHeartbeat:
		if frame, err = r.parseHeartbeatFrame(channel, size); err != nil {
			return
		}
		if _, err = io.ReadFull(r.r, r.head[:1]); err != nil {
			return nil, err
		}
		if r.head[0] != frameEnd {
			return nil, ErrFrame
		}
		return

	default:
		return nil, ErrFrame
	}

	buf, err := r.frameBuffer(int64(size) + 1)
	if err != nil {
		return nil, err
	}
	payload := buf[:size]

	switch typ {
	case frameMethod:
		frame, err = r.parseMethodPayload(channel, payload)
	case frameHeader:
		frame, err = r.parseHeaderFrame(channel, payload)
	default:
		frame, err = r.parseBodyFrame(channel, payload)
	}
	if err != nil {
		return nil, err
	}

	if buf[size] != frameEnd {
		return nil, ErrFrame
	}

	return frame, nil
}

// maxRetainedFrameBuffer bounds the buffer a reader keeps between frames: RabbitMQ's default
// frame_max (128 KiB) and a little more; a larger frame is read into a buffer of its own.
const maxRetainedFrameBuffer = 256 * 1024

// frameBuffer reads the next n bytes into the reader's buffer, valid until the next call.
// A buffer larger than the one kept grows as readBytes does, in readAllocChunk steps, so
// that a fabricated size alone cannot force a large allocation.
func (r *reader) frameBuffer(n int64) ([]byte, error) {
	if n > int64(cap(r.buf)) && n <= frameMinSize {
		r.buf = make([]byte, frameMinSize)
	}
	if n <= int64(cap(r.buf)) {
		b := r.buf[:n]
		if _, err := io.ReadFull(r.r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := readBytes(r.r, n)
	if err != nil {
		return nil, err
	}
	if cap(b) <= maxRetainedFrameBuffer {
		r.buf = b
	}
	return b, nil
}

// deliverFrame, ackFrame and nackFrame hold a method frame and its method in one allocation.
type deliverFrame struct {
	frame  methodFrame
	method basicDeliver
}

type ackFrame struct {
	frame  methodFrame
	method basicAck
}

type nackFrame struct {
	frame  methodFrame
	method basicNack
}

// parseMethodPayload decodes a method frame's payload. basic.deliver, basic.ack and
// basic.nack, the methods of every delivery and publisher confirm, are decoded here from the
// buffer; any other method goes through the generated parseMethodFrame (spec091.go), reading
// the same bytes. Arguments that do not fill the payload exactly are refused (ErrFrame).
func (r *reader) parseMethodPayload(channel uint16, payload []byte) (frame, error) {
	if len(payload) < 4 {
		return nil, io.ErrUnexpectedEOF
	}
	classID := binary.BigEndian.Uint16(payload[0:2])
	methodID := binary.BigEndian.Uint16(payload[2:4])
	d := decoder{b: payload, off: 4, in: r.interned()}

	if classID == 60 {
		switch methodID {
		case 60: // basic deliver
			f := &deliverFrame{frame: methodFrame{ChannelId: channel, ClassId: 60, MethodId: 60}}
			m := &f.method
			var err error
			if m.ConsumerTag, err = d.shortstr(); err != nil {
				return nil, err
			}
			if m.DeliveryTag, err = d.uint64(); err != nil {
				return nil, err
			}
			bits, err := d.uint8()
			if err != nil {
				return nil, err
			}
			m.Redelivered = (bits&(1<<0) > 0)
			if m.Exchange, err = d.shortstr(); err != nil {
				return nil, err
			}
			if m.RoutingKey, err = d.shortstr(); err != nil {
				return nil, err
			}
			if d.rest() != 0 {
				return nil, ErrFrame
			}
			f.frame.Method = m
			return &f.frame, nil

		case 80: // basic ack
			f := &ackFrame{frame: methodFrame{ChannelId: channel, ClassId: 60, MethodId: 80}}
			b, err := d.take(9)
			if err != nil {
				return nil, err
			}
			if d.rest() != 0 {
				return nil, ErrFrame
			}
			f.method.DeliveryTag = binary.BigEndian.Uint64(b)
			f.method.Multiple = (b[8]&(1<<0) > 0)
			f.frame.Method = &f.method
			return &f.frame, nil

		case 120: // basic nack
			f := &nackFrame{frame: methodFrame{ChannelId: channel, ClassId: 60, MethodId: 120}}
			b, err := d.take(9)
			if err != nil {
				return nil, err
			}
			if d.rest() != 0 {
				return nil, ErrFrame
			}
			f.method.DeliveryTag = binary.BigEndian.Uint64(b)
			f.method.Multiple = (b[8]&(1<<0) > 0)
			f.method.Requeue = (b[8]&(1<<1) > 0)
			f.frame.Method = &f.method
			return &f.frame, nil
		}
	}

	r.args.Reset(payload)
	generic := reader{r: &r.args}
	f, err := generic.parseMethodFrame(channel, uint32(len(payload)))
	rest := r.args.Len()
	r.args.Reset(nil)
	if err != nil {
		return nil, err
	}
	if rest != 0 {
		return nil, ErrFrame
	}
	return f, nil
}

// parseHeaderFrame decodes a content header frame's payload: upstream's parseHeaderFrame
// reading from the buffer. Bytes left after the properties are ignored, as upstream drains
// them.
func (r *reader) parseHeaderFrame(channel uint16, payload []byte) (frame frame, err error) {
	d := decoder{b: payload, in: r.interned()}
	b, err := d.take(14)
	if err != nil {
		return nil, err
	}

	hf := &headerFrame{
		ChannelId: channel,
		ClassId:   binary.BigEndian.Uint16(b[0:2]),
		weight:    binary.BigEndian.Uint16(b[2:4]),
		Size:      binary.BigEndian.Uint64(b[4:12]),
	}
	flags := binary.BigEndian.Uint16(b[12:14])
	p := &hf.Properties

	if hasProperty(flags, flagContentType) {
		if p.ContentType, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagContentEncoding) {
		if p.ContentEncoding, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagHeaders) {
		if p.Headers, err = d.table(0); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagDeliveryMode) {
		if p.DeliveryMode, err = d.uint8(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagPriority) {
		if p.Priority, err = d.uint8(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagCorrelationId) {
		if p.CorrelationId, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagReplyTo) {
		if p.ReplyTo, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagExpiration) {
		if p.Expiration, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagMessageId) {
		if p.MessageId, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagTimestamp) {
		sec, err := d.uint64()
		if err != nil {
			return nil, err
		}
		p.Timestamp = time.Unix(int64(sec), 0)
	}
	if hasProperty(flags, flagType) {
		if p.Type, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagUserId) {
		if p.UserId, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagAppId) {
		if p.AppId, err = d.shortstr(); err != nil {
			return nil, err
		}
	}
	if hasProperty(flags, flagReserved1) {
		if p.reserved1, err = d.shortstr(); err != nil {
			return nil, err
		}
	}

	return hf, nil
}

// parseBodyFrame returns the reader's own body frame, holding the reader's buffer: both are
// valid until the next ReadFrame. The channel copies a body frame's bytes into the message's
// own body (Channel.recvContent) and drops the frame, so no delivery keeps either.
func (r *reader) parseBodyFrame(channel uint16, payload []byte) (frame frame, err error) {
	r.body = bodyFrame{ChannelId: channel, Body: payload}
	return &r.body, nil
}

// interned returns the reader's table of recent short strings, made on first use.
func (r *reader) interned() *internTable {
	if r.strings == nil {
		r.strings = new(internTable)
	}
	return r.strings
}

// internTable keeps the last short strings seen, two to a bucket chosen by hash, with each
// string boxed in an interface once asked for as a field value. The consumer tag, exchange,
// routing key, content type, application id, header names and most header values of a stream
// of deliveries repeat from one message to the next: each is then allocated once per
// connection instead of once per delivery. A string that does not repeat (a message id) costs
// its hash and displaces the least recently used string of its bucket.
type internTable [internBuckets][2]internEntry

type internEntry struct {
	s string
	v any // s boxed, or nil
}

const (
	internBuckets = 128
	internMaxLen  = 64
)

// entry returns b's entry, made the bucket's first, with the string of b in it.
func (t *internTable) entry(b []byte) *internEntry {
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	bucket := &t[h%internBuckets]
	switch {
	case bucket[0].s == string(b):
	case bucket[1].s == string(b):
		bucket[0], bucket[1] = bucket[1], bucket[0]
	default:
		bucket[1] = bucket[0]
		bucket[0] = internEntry{s: string(b)}
	}
	return &bucket[0]
}

// str returns b as a string, the table's if it holds the same bytes.
func (t *internTable) str(b []byte) string {
	if t == nil || len(b) > internMaxLen {
		return string(b)
	}
	return t.entry(b).s
}

// value returns b as a string in an interface, the table's if it holds the same bytes.
func (t *internTable) value(b []byte) any {
	if t == nil || len(b) > internMaxLen {
		return string(b)
	}
	e := t.entry(b)
	if e.v == nil {
		e.v = e.s
	}
	return e.v
}

// decoder reads AMQP values from a frame's payload. Its results hold none of the payload's
// bytes: strings, byte arrays and tables are copies (or interned strings). A read past the end
// fails as upstream's reads from an io.Reader do, with the same effect on what follows (an
// array's elements end at an io.EOF, see readArrayDepth): io.EOF when the value's last
// readAllocChunk step has no byte to read, io.ErrUnexpectedEOF otherwise, and what was left is
// consumed.
type decoder struct {
	b   []byte
	off int
	in  *internTable // nil: strings are not interned
}

func (d *decoder) rest() int { return len(d.b) - d.off }

// take returns the next n bytes.
func (d *decoder) take(n int) ([]byte, error) {
	rest := d.rest()
	if n > rest {
		d.off = len(d.b)
		if rest%readAllocChunk == 0 {
			return nil, io.EOF
		}
		return nil, io.ErrUnexpectedEOF
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) uint8() (uint8, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) uint16() (uint16, error) {
	b, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

func (d *decoder) uint32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func (d *decoder) uint64() (uint64, error) {
	b, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func (d *decoder) shortstr() (string, error) {
	n, err := d.uint8()
	if err != nil {
		return "", err
	}
	b, err := d.take(int(n))
	if err != nil {
		return "", err
	}
	return d.in.str(b), nil
}

// longstr returns a long string's bytes, in the payload.
func (d *decoder) longstr() ([]byte, error) {
	n, err := d.uint32()
	if err != nil {
		return nil, err
	}
	// slices can't be longer than max int32 value
	if n > (^uint32(0) >> 1) {
		return nil, ErrSyntax
	}
	return d.take(int(n))
}

// field is readFieldDepth.
func (d *decoder) field(depth int) (any, error) {
	typ, err := d.uint8()
	if err != nil {
		return nil, err
	}

	switch typ {
	case 't':
		v, err := d.uint8()
		if err != nil {
			return nil, err
		}
		return v != 0, nil

	case 'B':
		v, err := d.uint8()
		if err != nil {
			return nil, err
		}
		return v, nil

	case 'b':
		v, err := d.uint8()
		if err != nil {
			return nil, err
		}
		return int8(v), nil

	case 's':
		v, err := d.uint16()
		if err != nil {
			return nil, err
		}
		return int16(v), nil

	case 'I':
		v, err := d.uint32()
		if err != nil {
			return nil, err
		}
		return int32(v), nil

	case 'l':
		v, err := d.uint64()
		if err != nil {
			return nil, err
		}
		return int64(v), nil

	case 'u':
		v, err := d.uint16()
		if err != nil {
			return nil, err
		}
		return v, nil

	case 'i':
		v, err := d.uint32()
		if err != nil {
			return nil, err
		}
		return v, nil

	case 'f':
		v, err := d.uint32()
		if err != nil {
			return nil, err
		}
		return math.Float32frombits(v), nil

	case 'd':
		v, err := d.uint64()
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(v), nil

	case 'D':
		scale, err := d.uint8()
		if err != nil {
			return nil, err
		}
		v, err := d.uint32()
		if err != nil {
			return nil, err
		}
		return Decimal{Scale: scale, Value: int32(v)}, nil

	case 'S':
		b, err := d.longstr()
		if err != nil {
			return nil, err
		}
		return d.in.value(b), nil

	case 'A':
		return d.array(depth + 1)

	case 'T':
		sec, err := d.uint64()
		if err != nil {
			return nil, err
		}
		return time.Unix(int64(sec), 0), nil

	case 'F':
		return d.table(depth + 1)

	case 'x':
		n, err := d.uint32()
		if err != nil {
			return nil, err
		}
		if int32(n) < 0 {
			return nil, ErrSyntax
		}
		b, err := d.take(int(n))
		if err != nil {
			return nil, err
		}
		return append(make([]byte, 0, len(b)), b...), nil

	case 'V':
		return nil, nil
	}

	return nil, ErrSyntax
}

// table is readTableDepth.
func (d *decoder) table(depth int) (Table, error) {
	if depth > maxFieldDepth {
		return nil, ErrSyntax
	}

	b, err := d.longstr()
	if err != nil {
		return nil, err
	}
	nested := decoder{b: b, in: d.in}

	table := make(Table)

	for nested.rest() > 0 {
		key, err := nested.shortstr()
		if err != nil {
			return nil, err
		}

		value, err := nested.field(depth)
		if err != nil {
			return nil, err
		}

		if len(table) >= maxContainerElements {
			return nil, ErrSyntax
		}

		table[key] = value
	}

	return table, nil
}

// array is readArrayDepth: its elements end at the first io.EOF, which is not an error.
func (d *decoder) array(depth int) (any, error) {
	if depth > maxFieldDepth {
		return nil, ErrSyntax
	}

	size, err := d.uint32()
	if err != nil {
		return nil, err
	}

	// size is the encoded blob's byte length, not the element count of arr.
	// Cap it like readLongstr's length to reject clearly invalid values.
	if size > math.MaxInt32 {
		return nil, ErrSyntax
	}

	n := d.rest()
	if int64(size) < int64(n) {
		n = int(size)
	}
	lim := decoder{b: d.b[d.off : d.off+n], in: d.in}

	var arr []any
	for {
		field, err := lim.field(depth)
		if err != nil {
			if err == io.EOF {
				break
			}
			return nil, err
		}

		if len(arr) >= maxContainerElements {
			return nil, ErrSyntax
		}

		arr = append(arr, field)
	}
	d.off += lim.off

	return arr, nil
}

// readAllocChunk caps how far readBytes allocates ahead of data confirmed
// present on the wire, so a fabricated length field cannot force a large
// allocation on its own.
const readAllocChunk = 64 * 1024

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// readBytes reads exactly n bytes, growing the buffer in readAllocChunk
// increments so it never allocates far ahead of confirmed data.
func readBytes(r io.Reader, n int64) ([]byte, error) {
	if n < 0 {
		return nil, ErrSyntax
	}

	buf := make([]byte, 0, min64(n, readAllocChunk))
	for int64(len(buf)) < n {
		chunk := int(min64(n-int64(len(buf)), readAllocChunk))
		old := len(buf)

		// append grows the backing array with Go's amortized (roughly
		// doubling) strategy, so repeated chunks don't each re-copy the
		// entire buffer read so far.
		buf = append(buf, make([]byte, chunk)...)

		if _, err := io.ReadFull(r, buf[old:]); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func readShortstr(r io.Reader) (v string, err error) {
	var length uint8
	if err = binary.Read(r, binary.BigEndian, &length); err != nil {
		return
	}

	bytes, err := readBytes(r, int64(length))
	if err != nil {
		return
	}
	return string(bytes), nil
}

func readLongstr(r io.Reader) (v string, err error) {
	var length uint32
	if err = binary.Read(r, binary.BigEndian, &length); err != nil {
		return
	}

	// slices can't be longer than max int32 value
	if length > (^uint32(0) >> 1) {
		return "", ErrSyntax
	}

	bytes, err := readBytes(r, int64(length))
	if err != nil {
		return
	}
	return string(bytes), nil
}

func readDecimal(r io.Reader) (v Decimal, err error) {
	if err = binary.Read(r, binary.BigEndian, &v.Scale); err != nil {
		return
	}
	if err = binary.Read(r, binary.BigEndian, &v.Value); err != nil {
		return
	}
	return
}

func readTimestamp(r io.Reader) (v time.Time, err error) {
	var sec int64
	if err = binary.Read(r, binary.BigEndian, &sec); err != nil {
		return
	}
	return time.Unix(sec, 0), nil
}

/*
'A': any
'D': Decimal
'F': Table
'I': int32
'S': string
'T': time.Time
'V': nil
'b': int8
'B': byte
'd': float64
'f': float32
'l': int64
'i': uint32
's': int16
'u': uint16
't': bool
'x': []byte
*/
// maxFieldDepth limits how deeply 'A' and 'F' fields may nest, preventing
// unbounded recursion from overflowing the goroutine stack.
const maxFieldDepth = 32

// maxContainerElements limits how many elements/entries readArrayDepth and
// readTableDepth will accept in a single container. AMQP tables/arrays in
// practice hold at most a few hundred entries (message properties, queue
// arguments, policy definitions); this cap rejects the empty-value ('V')
// padding trick that would otherwise amplify wire bytes ~16-40x into heap via
// boxed `any` slice elements / Table map entries.
const maxContainerElements = 8192

func readField(r io.Reader) (v any, err error) {
	return readFieldDepth(r, 0)
}

func readFieldDepth(r io.Reader, depth int) (v any, err error) {
	var typ byte
	if err = binary.Read(r, binary.BigEndian, &typ); err != nil {
		return
	}

	switch typ {
	case 't':
		var value uint8
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value != 0, nil

	case 'B':
		var value [1]byte
		if _, err = io.ReadFull(r, value[0:1]); err != nil {
			return
		}
		return value[0], nil

	case 'b':
		var value int8
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 's':
		var value int16
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'I':
		var value int32
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'l':
		var value int64
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'u':
		var value uint16
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'i':
		var value uint32
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'f':
		var value float32
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'd':
		var value float64
		if err = binary.Read(r, binary.BigEndian, &value); err != nil {
			return
		}
		return value, nil

	case 'D':
		return readDecimal(r)

	case 'S':
		return readLongstr(r)

	case 'A':
		return readArrayDepth(r, depth+1)

	case 'T':
		return readTimestamp(r)

	case 'F':
		return readTableDepth(r, depth+1)

	case 'x':
		var len int32
		if err = binary.Read(r, binary.BigEndian, &len); err != nil {
			return nil, err
		}
		if len < 0 {
			return nil, ErrSyntax
		}

		value, err := readBytes(r, int64(len))
		if err != nil {
			return nil, err
		}
		return value, nil

	case 'V':
		return nil, nil
	}

	return nil, ErrSyntax
}

/*
Field tables are long strings that contain packed name-value pairs.  The
name-value pairs are encoded as short string defining the name, and octet
defining the values type and then the value itself.   The valid field types for
tables are an extension of the native integer, bit, string, and timestamp
types, and are shown in the grammar.  Multi-octet integer fields are always
held in network byte order.
*/
func readTable(r io.Reader) (table Table, err error) {
	return readTableDepth(r, 0)
}

func readTableDepth(r io.Reader, depth int) (table Table, err error) {
	if depth > maxFieldDepth {
		return nil, ErrSyntax
	}

	var nested bytes.Buffer
	var str string

	if str, err = readLongstr(r); err != nil {
		return
	}

	nested.WriteString(str)

	table = make(Table)

	for nested.Len() > 0 {
		var key string
		var value any

		if key, err = readShortstr(&nested); err != nil {
			return
		}

		if value, err = readFieldDepth(&nested, depth); err != nil {
			return
		}

		if len(table) >= maxContainerElements {
			return nil, ErrSyntax
		}

		table[key] = value
	}

	return
}

func readArray(r io.Reader) (arr []any, err error) {
	return readArrayDepth(r, 0)
}

func readArrayDepth(r io.Reader, depth int) (arr []any, err error) {
	if depth > maxFieldDepth {
		return nil, ErrSyntax
	}

	var size uint32

	if err = binary.Read(r, binary.BigEndian, &size); err != nil {
		return nil, err
	}

	// size is the encoded blob's byte length, not the element count of arr.
	// Cap it like readLongstr's length to reject clearly invalid values.
	if size > math.MaxInt32 {
		return nil, ErrSyntax
	}

	var (
		lim   = &io.LimitedReader{R: r, N: int64(size)}
		field any
	)

	for {
		if field, err = readFieldDepth(lim, depth); err != nil {
			if err == io.EOF {
				break
			}
			return nil, err
		}

		if len(arr) >= maxContainerElements {
			return nil, ErrSyntax
		}

		arr = append(arr, field)
	}

	return arr, nil
}

// Checks if this bit mask matches the flags bitset
func hasProperty(mask uint16, prop int) bool {
	return int(mask)&prop > 0
}

var errHeartbeatPayload = errors.New("heartbeats should not have a payload")
var errHeartbeatChannel = errors.New("heartbeats must be sent on channel 0")

func (r *reader) parseHeartbeatFrame(channel uint16, size uint32) (frame frame, err error) {
	// Per the AMQP 0-9-1 spec, heartbeats are only ever sent on channel 0.
	if channel != 0 {
		return nil, errHeartbeatChannel
	}

	hf := &heartbeatFrame{
		ChannelId: channel,
	}

	if size > 0 {
		return nil, errHeartbeatPayload
	}

	return hf, nil
}
