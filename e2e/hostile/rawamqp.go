// Package hostile holds end-to-end tests of input that clients other than amqp091-go send:
// messages the router's AMQP client cannot decode must not wedge a source for good. Its raw
// AMQP 0-9-1 client writes frames by hand, so that it can send what py-amqp sends (a header
// field of type 'L', a signed 64-bit integer, for integers beyond 32 bits) and read back the
// field types the broker delivers.
package hostile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Frame types and the frame end octet (AMQP 0-9-1, section 4.2.3).
const (
	frameMethod = 1
	frameHeader = 2
	frameBody   = 3
	frameHeart  = 8
	frameEnd    = 0xCE
)

// errUnexpected is a frame or method other than the one the protocol expects next.
var errUnexpected = errors.New("rawamqp: unexpected frame")

// rawConn is one AMQP connection with channel 1 open, spoken by hand.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

// field is one header table entry written as raw bytes: its type octet and encoded value.
type field struct {
	name  string
	kind  byte
	value []byte
}

// int64Field is a field of type kind ('L' as py-amqp writes it, or 'l') holding v.
func int64Field(name string, kind byte, v int64) field {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return field{name: name, kind: kind, value: b}
}

func longstrField(name, v string) field {
	return field{name: name, kind: 'S', value: append(binary.BigEndian.AppendUint32(nil, uint32(len(v))), v...)}
}

// dialRaw connects to addr, logs in with PLAIN user/pass on vhost "/" and opens channel 1.
func dialRaw(addr, user, pass string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawConn{c: c, r: bufio.NewReader(c)}
	if err := rc.handshake(user, pass); err != nil {
		c.Close()
		return nil, err
	}
	return rc, nil
}

func (rc *rawConn) handshake(user, pass string) error {
	if _, err := rc.c.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	if _, err := rc.expect(0, 10, 10); err != nil { // connection.start
		return err
	}
	var startOk bytes.Buffer
	writeTable(&startOk, []field{longstrField("product", "wasmrouter-hostile-test")})
	writeShortstr(&startOk, "PLAIN")
	writeLongstr(&startOk, "\x00"+user+"\x00"+pass)
	writeShortstr(&startOk, "en_US")
	if err := rc.method(0, 10, 11, startOk.Bytes()); err != nil {
		return err
	}
	tune, err := rc.expect(0, 10, 30)
	if err != nil {
		return err
	}
	if len(tune) < 8 {
		return fmt.Errorf("%w: short connection.tune", errUnexpected)
	}
	tuneOk := append([]byte(nil), tune[:6]...)
	tuneOk = binary.BigEndian.AppendUint16(tuneOk, 0) // no heartbeats
	if err := rc.method(0, 10, 31, tuneOk); err != nil {
		return err
	}
	var open bytes.Buffer
	writeShortstr(&open, "/")
	writeShortstr(&open, "")
	open.WriteByte(0)
	if err := rc.method(0, 10, 40, open.Bytes()); err != nil {
		return err
	}
	if _, err := rc.expect(0, 10, 41); err != nil {
		return err
	}
	if err := rc.method(1, 20, 10, []byte{0}); err != nil { // channel.open
		return err
	}
	_, err = rc.expect(1, 20, 11)
	return err
}

// publishConfirmed publishes one persistent message with the given id and raw header fields,
// in confirm mode, and waits for the broker's basic.ack.
func (rc *rawConn) publishConfirmed(exchange, key, messageID string, headers []field, body []byte) error {
	if err := rc.method(1, 85, 10, []byte{0}); err != nil { // confirm.select
		return err
	}
	if _, err := rc.expect(1, 85, 11); err != nil {
		return err
	}
	var pub bytes.Buffer
	pub.Write([]byte{0, 0})
	writeShortstr(&pub, exchange)
	writeShortstr(&pub, key)
	pub.WriteByte(0)
	if err := rc.method(1, 60, 40, pub.Bytes()); err != nil {
		return err
	}
	var hdr bytes.Buffer
	hdr.Write([]byte{0, 60, 0, 0})
	_ = binary.Write(&hdr, binary.BigEndian, uint64(len(body)))
	// Property flags: headers (bit 13), delivery-mode (bit 12), message-id (bit 7).
	_ = binary.Write(&hdr, binary.BigEndian, uint16(1<<13|1<<12|1<<7))
	writeTable(&hdr, headers)
	hdr.WriteByte(2)
	writeShortstr(&hdr, messageID)
	if err := rc.frame(frameHeader, 1, hdr.Bytes()); err != nil {
		return err
	}
	if err := rc.frame(frameBody, 1, body); err != nil {
		return err
	}
	_, err := rc.expect(1, 60, 80) // basic.ack
	return err
}

// getHeaderKind fetches one message from queue (basic.get, auto-ack) and returns the type octet
// of its header field name, as the broker wrote it.
func (rc *rawConn) getHeaderKind(queue, name string) (byte, error) {
	var get bytes.Buffer
	get.Write([]byte{0, 0})
	writeShortstr(&get, queue)
	get.WriteByte(1) // no-ack
	if err := rc.method(1, 60, 70, get.Bytes()); err != nil {
		return 0, err
	}
	ch, class, method, _, err := rc.readMethod()
	if err != nil {
		return 0, err
	}
	if ch != 1 || class != 60 || method != 71 {
		return 0, fmt.Errorf("%w: basic.get answered %d.%d (72 is get-empty)", errUnexpected, class, method)
	}
	typ, _, payload, err := rc.readFrame()
	if err != nil {
		return 0, err
	}
	if typ != frameHeader || len(payload) < 14 {
		return 0, fmt.Errorf("%w: no content header after basic.get-ok", errUnexpected)
	}
	size := binary.BigEndian.Uint64(payload[4:12])
	flags := binary.BigEndian.Uint16(payload[12:14])
	props := payload[14:]
	for read := uint64(0); read < size; { // the body frames
		_, _, b, err := rc.readFrame()
		if err != nil {
			return 0, err
		}
		read += uint64(len(b))
	}
	if flags&(1<<15) != 0 { // content-type comes first
		props = props[1+int(props[0]):]
	}
	if flags&(1<<14) != 0 {
		props = props[1+int(props[0]):]
	}
	if flags&(1<<13) == 0 {
		return 0, errors.New("rawamqp: the message has no headers")
	}
	return findKind(props, name)
}

// close ends the connection politely.
func (rc *rawConn) close() error {
	defer rc.c.Close()
	var cl bytes.Buffer
	cl.Write([]byte{0, 200})
	writeShortstr(&cl, "bye")
	cl.Write([]byte{0, 0, 0, 0})
	if err := rc.method(0, 10, 50, cl.Bytes()); err != nil {
		return err
	}
	_, err := rc.expect(0, 10, 51)
	return err
}

func (rc *rawConn) method(channel, class, method uint16, args []byte) error {
	p := binary.BigEndian.AppendUint16(nil, class)
	p = binary.BigEndian.AppendUint16(p, method)
	return rc.frame(frameMethod, channel, append(p, args...))
}

func (rc *rawConn) frame(typ byte, channel uint16, payload []byte) error {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(append(b, payload...), frameEnd)
	_, err := rc.c.Write(b)
	return err
}

func (rc *rawConn) readFrame() (typ byte, channel uint16, payload []byte, err error) {
	var h [7]byte
	if _, err = io.ReadFull(rc.r, h[:]); err != nil {
		return
	}
	typ, channel = h[0], binary.BigEndian.Uint16(h[1:3])
	payload = make([]byte, binary.BigEndian.Uint32(h[3:7])+1)
	if _, err = io.ReadFull(rc.r, payload); err != nil {
		return
	}
	if payload[len(payload)-1] != frameEnd {
		return 0, 0, nil, fmt.Errorf("%w: bad frame end", errUnexpected)
	}
	return typ, channel, payload[:len(payload)-1], nil
}

// readMethod reads the next method frame, skipping heartbeats.
func (rc *rawConn) readMethod() (channel, class, method uint16, args []byte, err error) {
	for {
		typ, ch, p, err := rc.readFrame()
		if err != nil {
			return 0, 0, 0, nil, err
		}
		if typ == frameHeart {
			continue
		}
		if typ != frameMethod || len(p) < 4 {
			return 0, 0, 0, nil, fmt.Errorf("%w: frame type %d", errUnexpected, typ)
		}
		return ch, binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]), p[4:], nil
	}
}

// expect reads the next method and checks it is class.method on channel; a connection.close
// or channel.close from the broker is reported with its reply text.
func (rc *rawConn) expect(channel, class, method uint16) ([]byte, error) {
	ch, c, m, args, err := rc.readMethod()
	if err != nil {
		return nil, err
	}
	if (c == 10 && m == 50) || (c == 20 && m == 40) {
		code := binary.BigEndian.Uint16(args[0:2])
		return nil, fmt.Errorf("%w: the broker closed: %d %s", errUnexpected, code, args[3:3+int(args[2])])
	}
	if ch != channel || c != class || m != method {
		return nil, fmt.Errorf("%w: got %d.%d on channel %d, want %d.%d on %d", errUnexpected, c, m, ch, class, method, channel)
	}
	return args, nil
}

func writeShortstr(b *bytes.Buffer, s string) {
	b.WriteByte(byte(len(s)))
	b.WriteString(s)
}

func writeLongstr(b *bytes.Buffer, s string) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(s)))
	b.WriteString(s)
}

func writeTable(b *bytes.Buffer, fields []field) {
	var t bytes.Buffer
	for _, f := range fields {
		writeShortstr(&t, f.name)
		t.WriteByte(f.kind)
		t.Write(f.value)
	}
	_ = binary.Write(b, binary.BigEndian, uint32(t.Len()))
	b.Write(t.Bytes())
}

// fixedSize is the value size of the fixed-width field types.
var fixedSize = map[byte]int{'t': 1, 'b': 1, 'B': 1, 's': 2, 'u': 2, 'I': 4, 'i': 4, 'f': 4,
	'l': 8, 'L': 8, 'd': 8, 'T': 8, 'D': 5, 'V': 0}

// findKind walks a field table (with its length prefix) for name and returns its type octet.
func findKind(b []byte, name string) (byte, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: short table", errUnexpected)
	}
	t := b[4 : 4+binary.BigEndian.Uint32(b[:4])]
	for len(t) > 0 {
		n := int(t[0])
		key := string(t[1 : 1+n])
		kind := t[1+n]
		t = t[2+n:]
		if key == name {
			return kind, nil
		}
		size, ok := fixedSize[kind]
		if !ok { // S, x, A, F: a 32-bit length, then the bytes
			size = 4 + int(binary.BigEndian.Uint32(t[:4]))
		}
		t = t[size:]
	}
	return 0, fmt.Errorf("rawamqp: no header %q", name)
}
