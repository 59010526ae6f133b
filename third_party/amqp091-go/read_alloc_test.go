// Tests and benchmarks of the local changes to the frame reader (see README.md in this
// directory): the patched reader decodes every frame as upstream's (read_upstream_test.go)
// does, what it hands on holds none of its reused buffer, and a delivery's frames allocate
// a few times instead of about sixty.

package amqp091

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// deliveryFrames returns n deliveries as the broker sends them (basic.deliver, content header,
// one body frame), with the properties and headers of the router's benchmark messages.
// deliveriesPerRound of them are more message ids than the reader's table of short strings
// holds, so that replayed, they do not repeat for the table, as message ids do not.
const deliveriesPerRound = 1024

func deliveryFrames(tb testing.TB, n int, body []byte) []byte {
	tb.Helper()
	var wire bytes.Buffer
	for i := 0; i < n; i++ {
		props := properties{
			ContentType:  "application/json",
			DeliveryMode: Persistent,
			MessageId:    "bench-run-1-" + strconv.Itoa(i),
			Timestamp:    time.Unix(1700000000+int64(i), 0),
			AppId:        "wasmrouter-bench",
			Headers:      Table{"tenant": "acme", "x-bench-seq": int64(1000 + i)},
		}
		frames := []frame{
			&methodFrame{ChannelId: 1, Method: &basicDeliver{ConsumerTag: "ctag-router-1", DeliveryTag: uint64(i + 1), Exchange: "bench.in", RoutingKey: "orders.created"}},
			&headerFrame{ChannelId: 1, ClassId: 60, Size: uint64(len(body)), Properties: props},
			&bodyFrame{ChannelId: 1, Body: body},
		}
		for _, f := range frames {
			if err := f.write(&wire); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return wire.Bytes()
}

// confirmFrames returns n basic.ack frames.
func confirmFrames(tb testing.TB, n int) []byte {
	tb.Helper()
	var wire bytes.Buffer
	for i := 0; i < n; i++ {
		if err := (&methodFrame{ChannelId: 2, Method: &basicAck{DeliveryTag: uint64(i + 1)}}).write(&wire); err != nil {
			tb.Fatal(err)
		}
	}
	return wire.Bytes()
}

// loopReader replays the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if l.off == len(l.data) {
		l.off = 0
	}
	n := copy(p, l.data[l.off:])
	l.off += n
	return n, nil
}

// benchChannel is a channel whose deliveries are built (newDelivery) and then dropped: no
// consumer holds the tag, so no goroutine runs.
func benchChannel() *Channel {
	return newChannel(&Connection{}, 1)
}

// BenchmarkReadDelivery reads a delivery's three frames through the connection's buffered
// reader and the channel's content state machine, up to the Delivery handed to the consumer.
func BenchmarkReadDelivery(b *testing.B) {
	const batch = deliveriesPerRound
	data := deliveryFrames(b, batch, bytes.Repeat([]byte("x"), 1024))
	r := &reader{r: bufio.NewReader(&loopReader{data: data})}
	ch := benchChannel()
	b.ReportAllocs()
	b.SetBytes(int64(len(data) / batch))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 3; j++ {
			f, err := r.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			ch.recv(ch, f)
		}
	}
}

// BenchmarkReadConfirm reads one basic.ack frame (a publisher confirm).
func BenchmarkReadConfirm(b *testing.B) {
	const batch = 64
	r := &reader{r: bufio.NewReader(&loopReader{data: confirmFrames(b, batch)})}
	ch := benchChannel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		ch.recv(ch, f)
	}
}

// otherFrames returns frames of every kind the reader decodes: methods through both paths,
// content headers with every property and field type, bodies and a heartbeat.
func otherFrames(tb testing.TB) (data []byte, count int) {
	tb.Helper()
	var wire bytes.Buffer
	seeds := fuzzSeedFrames(tb)
	for _, seed := range seeds {
		wire.Write(seed)
	}
	frames := []frame{
		&methodFrame{ChannelId: 2, Method: &basicAck{DeliveryTag: 1 << 40, Multiple: true}},
		&methodFrame{ChannelId: 2, Method: &basicNack{DeliveryTag: 7, Multiple: true, Requeue: true}},
		&methodFrame{ChannelId: 2, Method: &basicNack{DeliveryTag: 8}},
		&methodFrame{ChannelId: 3, Method: &basicReturn{ReplyCode: 312, ReplyText: "NO_ROUTE", Exchange: "x", RoutingKey: "k"}},
		&methodFrame{ChannelId: 3, Method: &channelClose{ReplyCode: 404, ReplyText: "NOT_FOUND", ClassId: 50, MethodId: 10}},
		&methodFrame{ChannelId: 0, Method: &connectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60}},
		&headerFrame{ChannelId: 1, ClassId: 60, Size: 0},
		&headerFrame{ChannelId: 1, ClassId: 60, Size: 3, Properties: properties{Headers: Table{}, reserved1: "r"}},
		&headerFrame{ChannelId: 1, ClassId: 60, Size: 3, Properties: properties{Headers: Table{
			"empty": "", "long": string(bytes.Repeat([]byte("s"), 300)), "bytes0": []byte{},
			"array0": []any{}, "deep": Table{"a": []any{Table{"b": []any{[]byte("c"), Decimal{Scale: 1, Value: -1}}}}},
			"nan": math.Inf(-1), "max": int64(math.MaxInt64), "min": int32(math.MinInt32),
		}}},
		&bodyFrame{ChannelId: 1, Body: []byte{}},
		&bodyFrame{ChannelId: 1, Body: bytes.Repeat([]byte("b"), 200000)},
	}
	for _, f := range frames {
		if err := f.write(&wire); err != nil {
			tb.Fatal(err)
		}
	}
	wire.Write(deliveryFrames(tb, 3, []byte("body")))
	wire.Write(confirmFrames(tb, 2))
	// A header frame padded after its properties, which both readers skip.
	wire.WriteString("\x02\x00\x01\x00\x00\x00\x12\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x0a\x54\x00\x00\x00\x00\x00\x00\xce")
	return wire.Bytes(), len(seeds) + len(frames) + 3*3 + 2 + 1
}

// compareReaders reads data as a stream of frames with upstream's reader and the patched one
// and fails unless both decode the same frames and stop at the same place. The one difference
// allowed: a method frame whose arguments upstream read short of or past its declared size
// (so its next frame would start in the wrong place) is refused by the patched reader.
func compareReaders(t *testing.T, data []byte, maxFrameSize uint32) (frames int) {
	t.Helper()
	var max atomic.Uint32
	max.Store(maxFrameSize)
	up, pr := bytes.NewReader(data), bytes.NewReader(data)
	upstream := &reader{r: up, maxFrameSize: &max}
	patched := &reader{r: pr, maxFrameSize: &max}
	for {
		start := len(data) - up.Len()
		want, werr := upstream.readFrameUpstream()
		got, gerr := patched.ReadFrame()
		if werr != nil {
			if gerr == nil {
				t.Fatalf("frame %d at %d: upstream failed (%v), patched read %#v", frames, start, werr, got)
			}
			return frames
		}
		if gerr != nil {
			size := int(binary.BigEndian.Uint32(data[start+3 : start+7]))
			if _, ok := want.(*methodFrame); ok && len(data)-up.Len()-start != 7+size+1 {
				return frames
			}
			t.Fatalf("frame %d at %d: upstream read %#v, patched failed: %v", frames, start, want, gerr)
		}
		if up.Len() != pr.Len() {
			t.Fatalf("frame %d at %d: upstream read up to %d, patched to %d", frames, start, len(data)-up.Len(), len(data)-pr.Len())
		}
		if !containsNaN(reflect.ValueOf(want)) && !reflect.DeepEqual(want, got) {
			t.Fatalf("frame %d at %d:\n got %#v\nwant %#v", frames, start, got, want)
		}
		frames++
	}
}

func TestReadFrameMatchesUpstream(t *testing.T) {
	data, count := otherFrames(t)
	for _, max := range []uint32{0, 1 << 20} {
		if n := compareReaders(t, data, max); n != count {
			t.Fatalf("%d frames read, %d written", n, count)
		}
	}
	// Every prefix: each truncation fails, or not, as upstream.
	for n := 0; n < len(data) && n < 4096; n++ {
		compareReaders(t, data[:n], 0)
	}
}

func FuzzReadFrameMatchesUpstream(f *testing.F) {
	for _, seed := range fuzzSeedFrames(f) {
		f.Add(seed, uint32(0))
	}
	f.Add(deliveryFrames(f, 2, []byte("hello")), uint32(0))
	f.Add(confirmFrames(f, 2), uint32(frameMinSize))
	f.Fuzz(func(t *testing.T, data []byte, maxFrameSize uint32) {
		if maxFrameSize != 0 && maxFrameSize < frameMinSize {
			maxFrameSize = frameMinSize
		}
		compareReaders(t, data, maxFrameSize)
	})
}

// compareFields decodes data as a field value, alone and as an array's elements, with
// upstream's readFieldDepth and the patched decoder: the same values, the same errors as far
// as an enclosing array can tell (io.EOF or another), the same bytes consumed.
func compareFields(t *testing.T, data []byte) {
	t.Helper()
	up := bytes.NewReader(data)
	want, werr := readFieldDepth(up, 0)
	d := decoder{b: data, in: new(internTable)}
	got, gerr := d.field(0)
	if (werr == nil) != (gerr == nil) || (werr == io.EOF) != (gerr == io.EOF) {
		t.Fatalf("field %x: upstream error %v, patched %v", data, werr, gerr)
	}
	if werr == nil {
		if len(data)-up.Len() != d.off {
			t.Fatalf("field %x: upstream read %d bytes, patched %d", data, len(data)-up.Len(), d.off)
		}
		if !containsNaN(reflect.ValueOf(want)) && !reflect.DeepEqual(want, got) {
			t.Fatalf("field %x:\n got %#v\nwant %#v", data, got, want)
		}
	}

	array := binary.BigEndian.AppendUint32([]byte{'A'}, uint32(len(data)))
	array = append(array, data...)
	array = append(array, 'V', 't', 1) // what follows the array
	up = bytes.NewReader(array)
	want, werr = readFieldDepth(up, 0)
	d = decoder{b: array, in: new(internTable)}
	got, gerr = d.field(0)
	if (werr == nil) != (gerr == nil) || (werr == io.EOF) != (gerr == io.EOF) {
		t.Fatalf("array %x: upstream error %v, patched %v", array, werr, gerr)
	}
	if werr == nil {
		if len(array)-up.Len() != d.off {
			t.Fatalf("array %x: upstream read %d bytes, patched %d", array, len(array)-up.Len(), d.off)
		}
		if !containsNaN(reflect.ValueOf(want)) && !reflect.DeepEqual(want, got) {
			t.Fatalf("array %x:\n got %#v\nwant %#v", array, got, want)
		}
	}
}

func TestDecodeFieldMatchesUpstream(t *testing.T) {
	for _, seed := range fuzzSeedFields(t) {
		compareFields(t, seed)
		for n := 0; n < len(seed) && n < 512; n++ {
			compareFields(t, seed[:n])
		}
	}
	// A table inside an array, cut short inside: upstream's array ends there, and what is left
	// of the array's bytes is read by the enclosing table.
	compareFields(t, []byte{'F', 0, 0, 0, 2, 1, 'a', 'V', 3, 'k', 'e', 'y', 'V'})
	// A byte array longer than one readAllocChunk step, cut at a step's end and inside one.
	long := binary.BigEndian.AppendUint32([]byte{'x'}, 3*readAllocChunk)
	compareFields(t, append(long, make([]byte, readAllocChunk)...))
	compareFields(t, append(long, make([]byte, readAllocChunk+1)...))
}

func FuzzDecodeFieldMatchesUpstream(f *testing.F) {
	for _, seed := range fuzzSeedFields(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareFields(t, data)
	})
}

// TestDeliveriesHoldNoReusedBuffer reads deliveries whose bodies and headers differ, through a
// channel to its consumer, and checks each one after all were read: a delivery holding the
// reader's buffer would show a later frame's bytes.
func TestDeliveriesHoldNoReusedBuffer(t *testing.T) {
	const n = 20
	var wire bytes.Buffer
	for i := 0; i < n; i++ {
		body := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
		frames := []frame{
			&methodFrame{ChannelId: 1, Method: &basicDeliver{ConsumerTag: "ctag", DeliveryTag: uint64(i + 1), Exchange: "ex", RoutingKey: string(rune('a' + i))}},
			&headerFrame{ChannelId: 1, ClassId: 60, Size: uint64(len(body)), Properties: properties{
				MessageId: string(body[:10]),
				Headers:   Table{"bytes": body[:5], "s": string(body[:7]), "a": []any{string(body[:3])}},
			}},
			// The body in two frames, so that the channel assembles it.
			&bodyFrame{ChannelId: 1, Body: body[:50]},
			&bodyFrame{ChannelId: 1, Body: body[50:]},
		}
		for _, f := range frames {
			if err := f.write(&wire); err != nil {
				t.Fatal(err)
			}
		}
	}

	ch := benchChannel()
	deliveries := make(chan Delivery, n)
	ch.consumers.add("ctag", deliveries, consumerConfig{})
	r := &reader{r: bufio.NewReader(&wire)}
	for i := 0; i < 4*n; i++ {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		ch.recv(ch, f)
	}
	for i := 0; i < n; i++ {
		var d Delivery
		select {
		case d = <-deliveries:
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery %d not dispatched", i)
		}
		body := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
		if !bytes.Equal(d.Body, body) || d.MessageId != string(body[:10]) || d.RoutingKey != string(rune('a'+i)) {
			t.Fatalf("delivery %d: body %q, message id %q, routing key %q", i, d.Body, d.MessageId, d.RoutingKey)
		}
		want := Table{"bytes": body[:5], "s": string(body[:7]), "a": []any{string(body[:3])}}
		if !reflect.DeepEqual(d.Headers, want) {
			t.Fatalf("delivery %d: headers %#v", i, d.Headers)
		}
	}
	ch.consumers.close()
}

func TestReadDeliveryAllocations(t *testing.T) {
	const batch = deliveriesPerRound
	r := &reader{r: bufio.NewReader(&loopReader{data: deliveryFrames(t, batch, bytes.Repeat([]byte("x"), 1024))})}
	ch := benchChannel()
	allocs := testing.AllocsPerRun(2*batch, func() {
		for j := 0; j < 3; j++ {
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			ch.recv(ch, f)
		}
	})
	// Upstream allocates about 60 times per delivery here. What is left: the method frame,
	// the header frame, the header table (two), the message id, the boxed x-bench-seq and the
	// body; the Delivery too where it cannot go straight into its consumer's channel (here
	// there is no consumer).
	t.Logf("%.1f allocations per delivery", allocs)
	if allocs > 10 {
		t.Fatalf("%.1f allocations per delivery", allocs)
	}
}

func TestReadConfirmAllocations(t *testing.T) {
	r := &reader{r: bufio.NewReader(&loopReader{data: confirmFrames(t, 64)})}
	allocs := testing.AllocsPerRun(640, func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	})
	// Upstream: 7. The method frame and its basic.ack are one allocation.
	if allocs > 1 {
		t.Fatalf("%.1f allocations per confirm", allocs)
	}
}
