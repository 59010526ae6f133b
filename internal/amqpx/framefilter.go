package amqpx

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
)

// The AMQP client (amqp091-go) closes the whole connection when it cannot decode a message's
// header table: a field type it does not know ('L', as py-amqp writes), nesting deeper than it
// allows, too many entries. The broker then redelivers the message at the head of the queue,
// forever, and every source and target on that connection stops: one publisher could wedge a
// cluster. So every connection reads the broker's frames through frameFilter, which checks
// each content header's table with the client's own rules (checkTable) and replaces a table
// the client would refuse by one holding only the reason, under a key no publisher can know.
// The source rejects such a delivery without requeueing: the broker dead-letters its own,
// unaltered copy to the queue's dead-letter exchange (see docs/reliability for the catalogue).

// Limits of amqp091-go's decoder (read.go), which checkTable mirrors.
const (
	clientMaxFieldDepth   = 32
	clientMaxContainerLen = 8192
)

// maxFilteredFrame bounds the content header frames the filter buffers; a header frame is at
// most the negotiated frame_max (128 KiB by default), and larger frames pass unchecked.
const maxFilteredFrame = 4 << 20

const (
	frameMethod    = 1
	frameHeader    = 2
	frameEnd       = 0xCE
	flagHeadersBit = 0x2000
	flagTypeBit    = 0x8000 // content-type
	flagEncBit     = 0x4000 // content-encoding
)

// undecodableKey is the header under which a replaced table carries its reason; random per
// process, so that no publisher can forge it.
var undecodableKey = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "x-router-undecodable-" + hex.EncodeToString(b[:])
}()

// UndecodableReason returns why the filter replaced a delivery's header table, or "".
func UndecodableReason(headers map[string]any) string {
	if reason, ok := headers[undecodableKey].(string); ok {
		return reason
	}
	return ""
}

// FilterConn makes c's reads go through the frame filter the router's own connections use:
// for another AMQP client on amqp091-go that must read a queue holding messages it could not
// decode (the copies the broker dead-letters when a source rejects them).
func FilterConn(c net.Conn) net.Conn { return newFilteredConn(c, nil) }

// filteredConn is a connection whose reads go through a frameFilter.
type filteredConn struct {
	net.Conn
	f *frameFilter
}

// newFilteredConn filters c's reads and, with returns, counts the basic.return frames read.
func newFilteredConn(c net.Conn, returns *returnCounts) *filteredConn {
	f := newFrameFilter(c)
	f.returns = returns
	return &filteredConn{Conn: c, f: f}
}

func (c *filteredConn) Read(p []byte) (int, error) { return c.f.Read(p) }

// frameFilter passes the broker's frames through, checking content header frames.
type frameFilter struct {
	r       *bufio.Reader
	started bool
	raw     bool   // not AMQP frames (the broker answered with a protocol header): pass through
	pending []byte // bytes of a checked frame not yet read
	direct  int64  // bytes of the current frame to pass straight from r
	buf     []byte
	returns *returnCounts // nil: not counted
}

func newFrameFilter(r io.Reader) *frameFilter {
	return &frameFilter{r: bufio.NewReaderSize(r, 64<<10)}
}

func (f *frameFilter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch {
		case f.raw:
			return f.r.Read(p)
		case len(f.pending) > 0:
			n := copy(p, f.pending)
			f.pending = f.pending[n:]
			return n, nil
		case f.direct > 0:
			if int64(len(p)) > f.direct {
				p = p[:f.direct]
			}
			n, err := f.r.Read(p)
			f.direct -= int64(n)
			return n, err
		}
		if err := f.next(); err != nil {
			return 0, err
		}
	}
}

// next reads the next frame's header and either buffers the whole frame (a content header,
// checked and perhaps rewritten, into pending) or sets it up to pass straight through.
func (f *frameFilter) next() error {
	if !f.started {
		f.started = true
		if b, err := f.r.Peek(1); err == nil && b[0] == 'A' {
			f.raw = true
			return nil
		}
	}
	head, err := f.r.Peek(7)
	if err != nil {
		if len(head) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	size := int64(binary.BigEndian.Uint32(head[3:7]))
	if head[0] == frameMethod && size >= 4 && f.returns != nil {
		// Counted before the library reads the frame, so before it dispatches the confirm
		// that follows (pubChannel.settle relies on it). The method frame is at least 11 bytes.
		if m, err := f.r.Peek(11); err == nil && isBasicReturn(m[7:11]) {
			f.returns.seen.Add(1)
		}
	}
	if head[0] != frameHeader || size > maxFilteredFrame {
		f.direct = 7 + size + 1
		return nil
	}
	total := int(7 + size + 1)
	if cap(f.buf) < total {
		f.buf = make([]byte, total)
	}
	frame := f.buf[:total]
	if _, err := io.ReadFull(f.r, frame); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	f.pending = FilterHeaderFrame(frame)
	return nil
}

// isBasicReturn reports whether a method frame's class and method ids are basic.return's.
func isBasicReturn(ids []byte) bool {
	return binary.BigEndian.Uint16(ids[0:2]) == 60 && binary.BigEndian.Uint16(ids[2:4]) == 50
}

// FilterHeaderFrame returns a content header frame as it is when the client can decode its
// header table, or rebuilt with a table that holds only the reason when it cannot. Anything
// it does not understand is returned unchanged, for the client to judge.
func FilterHeaderFrame(frame []byte) []byte {
	if len(frame) < 7+14+1 || frame[len(frame)-1] != frameEnd {
		return frame
	}
	payload := frame[7 : len(frame)-1]
	flags := binary.BigEndian.Uint16(payload[12:14])
	if flags&flagHeadersBit == 0 {
		return frame
	}
	pos := 14
	for _, bit := range []uint16{flagTypeBit, flagEncBit} {
		if flags&bit != 0 {
			if pos >= len(payload) {
				return frame
			}
			pos += 1 + int(payload[pos])
		}
	}
	if pos+4 > len(payload) {
		return frame
	}
	tableLen := int64(binary.BigEndian.Uint32(payload[pos : pos+4]))
	end := int64(pos) + 4 + tableLen
	if end > int64(len(payload)) {
		return frame // truncated: the client fails the frame either way
	}
	if err := checkTable(payload[pos+4:end], 0); err == nil {
		return frame
	} else {
		return rebuildHeaderFrame(frame, pos, int(end), fmt.Sprintf("header table cannot be decoded: %v", err))
	}
}

// rebuildHeaderFrame replaces the table at payload[pos:end] by {undecodableKey: reason}.
func rebuildHeaderFrame(frame []byte, pos, end int, reason string) []byte {
	payload := frame[7 : len(frame)-1]
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	var table []byte
	table = append(table, byte(len(undecodableKey)))
	table = append(table, undecodableKey...)
	table = append(table, 'S')
	table = binary.BigEndian.AppendUint32(table, uint32(len(reason)))
	table = append(table, reason...)

	out := make([]byte, 0, len(frame)-(end-pos)+4+len(table))
	out = append(out, frame[:7]...)
	out = append(out, payload[:pos]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(table)))
	out = append(out, table...)
	out = append(out, payload[end:]...)
	out = append(out, frameEnd)
	binary.BigEndian.PutUint32(out[3:7], uint32(len(out)-8))
	return out
}

// errTable is the reason a table would fail in the client.
type errTable string

func (e errTable) Error() string { return string(e) }

// checkTable checks a field table's entries (without its length prefix) as amqp091-go's
// readTableDepth decodes them, at nesting depth.
func checkTable(b []byte, depth int) error {
	if depth > clientMaxFieldDepth {
		return errTable(fmt.Sprintf("nested deeper than %d levels", clientMaxFieldDepth))
	}
	entries := 0
	for len(b) > 0 {
		n := int(b[0])
		if 1+n > len(b) {
			return errTable("truncated field name")
		}
		b = b[1+n:]
		rest, err := checkField(b, depth)
		if err != nil {
			return err
		}
		b = rest
		if entries++; entries > clientMaxContainerLen {
			return errTable(fmt.Sprintf("more than %d entries in a table", clientMaxContainerLen))
		}
	}
	return nil
}

// checkArray checks an array's elements as readArrayDepth decodes them.
func checkArray(b []byte, depth int) error {
	if depth > clientMaxFieldDepth {
		return errTable(fmt.Sprintf("nested deeper than %d levels", clientMaxFieldDepth))
	}
	elements := 0
	for len(b) > 0 {
		rest, err := checkField(b, depth)
		if err != nil {
			return err
		}
		b = rest
		if elements++; elements > clientMaxContainerLen {
			return errTable(fmt.Sprintf("more than %d elements in an array", clientMaxContainerLen))
		}
	}
	return nil
}

// fixedFieldSize is the size of each fixed-width field type the client knows.
var fixedFieldSize = map[byte]int{
	't': 1, 'B': 1, 'b': 1, 's': 2, 'u': 2, 'I': 4, 'i': 4, 'f': 4,
	'l': 8, 'd': 8, 'T': 8, 'D': 5, 'V': 0,
}

// checkField checks one typed value and returns what follows it.
func checkField(b []byte, depth int) ([]byte, error) {
	if len(b) == 0 {
		return nil, errTable("truncated field")
	}
	typ := b[0]
	b = b[1:]
	if n, ok := fixedFieldSize[typ]; ok {
		if len(b) < n {
			return nil, errTable("truncated field")
		}
		return b[n:], nil
	}
	switch typ {
	case 'S', 'x', 'A', 'F':
	default:
		return nil, errTable(fmt.Sprintf("field type %q is not supported by the client", typ))
	}
	if len(b) < 4 {
		return nil, errTable("truncated field")
	}
	n := int64(binary.BigEndian.Uint32(b[:4]))
	b = b[4:]
	if n > math.MaxInt32 {
		return nil, errTable("field length over 2 GiB")
	}
	if n > int64(len(b)) {
		return nil, errTable("truncated field")
	}
	inner, rest := b[:n], b[n:]
	switch typ {
	case 'A':
		if err := checkArray(inner, depth+1); err != nil {
			return nil, err
		}
	case 'F':
		if err := checkTable(inner, depth+1); err != nil {
			return nil, err
		}
	}
	return rest, nil
}
