// Tests of the local changes to the frame writer (see README.md in this directory): the frames
// written through the buffered paths are byte for byte those of the generic paths, read back to
// what was written, and a publish's frames allocate (almost) nothing.

package amqp091

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// plainWriter hides the concrete type of its writer, so that the functions under test take
// their generic (upstream) path.
type plainWriter struct{ w io.Writer }

func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

func testPublishing() (*basicPublish, properties) {
	props := properties{
		ContentType:   "application/json",
		Headers:       Table{"tenant": "acme", "x-router-seq": int64(1 << 40), "x-router-route": "orders", "n": int32(-7), "ok": true, "f": 1.5, "b": []byte{1, 2}, "nested": Table{"a": []any{int16(3), "x", nil}}, "t": time.Unix(1700000000, 0), "d": Decimal{Scale: 2, Value: 12345}, "u": uint16(9), "i": uint32(10), "f32": float32(2.5), "by": byte(4), "i8": int8(-1)},
		DeliveryMode:  2,
		Priority:      3,
		CorrelationId: "corr",
		ReplyTo:       "reply",
		Expiration:    "60000",
		MessageId:     "m-1",
		Timestamp:     time.Unix(1700000001, 0),
		Type:          "order.created",
		UserId:        "guest",
		AppId:         "app",
	}
	return &basicPublish{Exchange: "events", RoutingKey: "order.created", Mandatory: true, Body: []byte("hello")}, props
}

func TestPublishMethodFrameMatchesGenericPath(t *testing.T) {
	pub, _ := testPublishing()
	var fast bytes.Buffer
	bw := bufio.NewWriter(&fast)
	if err := (&methodFrame{ChannelId: 3, Method: pub}).write(bw); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}

	// The same frame through the generic paths: basicPublish.write and writeFrame on a plain
	// writer, the class and method ids by hand.
	var payload bytes.Buffer
	payload.Write([]byte{0, 60, 0, 40})
	if err := pub.write(plainWriter{&payload}); err != nil {
		t.Fatal(err)
	}
	var slow bytes.Buffer
	if err := writeFrame(plainWriter{&slow}, frameMethod, 3, payload.Bytes()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast.Bytes(), slow.Bytes()) {
		t.Fatalf("method frame\n got %x\nwant %x", fast.Bytes(), slow.Bytes())
	}
}

func TestPublishFramesRoundTrip(t *testing.T) {
	pub, props := testPublishing()
	var wire bytes.Buffer
	bw := bufio.NewWriter(&wire)
	frames := []frame{
		&methodFrame{ChannelId: 1, Method: pub},
		&headerFrame{ChannelId: 1, ClassId: 60, Size: uint64(len(pub.Body)), Properties: props},
		&bodyFrame{ChannelId: 1, Body: pub.Body},
	}
	for _, f := range frames {
		if err := f.write(bw); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	r := reader{r: &wire}
	for i := range frames {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		switch g := got.(type) {
		case *methodFrame:
			m := g.Method.(*basicPublish)
			if m.Exchange != pub.Exchange || m.RoutingKey != pub.RoutingKey || !m.Mandatory || m.Immediate {
				t.Fatalf("method read back as %+v", m)
			}
		case *headerFrame:
			want := props
			// Read back as the reader's types: a nested array and times in their decoded form.
			want.Headers = Table{}
			for k, v := range props.Headers {
				want.Headers[k] = v
			}
			if g.Size != uint64(len(pub.Body)) {
				t.Fatalf("body size %d", g.Size)
			}
			for k, v := range want.Headers {
				gv := g.Properties.Headers[k]
				if tv, ok := v.(time.Time); ok {
					if !tv.Equal(gv.(time.Time)) {
						t.Fatalf("header %s: %v, want %v", k, gv, v)
					}
					continue
				}
				if !reflect.DeepEqual(gv, v) {
					t.Fatalf("header %s: %#v, want %#v", k, gv, v)
				}
			}
			if len(g.Properties.Headers) != len(want.Headers) {
				t.Fatalf("%d headers read back, want %d", len(g.Properties.Headers), len(want.Headers))
			}
			gp, wp := g.Properties, props
			gp.Headers, wp.Headers = nil, nil
			if !gp.Timestamp.Equal(wp.Timestamp) {
				t.Fatalf("timestamp %v, want %v", gp.Timestamp, wp.Timestamp)
			}
			gp.Timestamp, wp.Timestamp = time.Time{}, time.Time{}
			if !reflect.DeepEqual(gp, wp) {
				t.Fatalf("properties\n got %+v\nwant %+v", gp, wp)
			}
		case *bodyFrame:
			if string(g.Body) != string(pub.Body) {
				t.Fatalf("body %q", g.Body)
			}
		default:
			t.Fatalf("frame %d: %T", i, got)
		}
	}
}

func TestWriteTableErrorsKeptWithPooledBuffers(t *testing.T) {
	var buf bytes.Buffer
	if err := writeTable(&buf, Table{"bad": struct{}{}}); err == nil {
		t.Fatal("unsupported value type written")
	}
	if err := writeTable(&buf, Table{strings.Repeat("k", 256): "v"}); err == nil {
		t.Fatal("key over 255 bytes written")
	}
	// A buffer given back after an error must not carry its bytes into the next table.
	buf.Reset()
	if err := writeTable(&buf, Table{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 8, 1, 'a', 'S', 0, 0, 0, 1, 'b'}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("table %x, want %x", buf.Bytes(), want)
	}
}

func TestPublishFramesAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	pub, props := testPublishing()
	props.Headers = Table{"tenant": "acme", "x-bench-seq": int64(12345), "x-router-route": "orders", "x-router-source": "in", "x-router-seq": int64(1 << 40)}
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	mf := &methodFrame{ChannelId: 1, Method: pub}
	hf := &headerFrame{ChannelId: 1, ClassId: 60, Size: uint64(len(pub.Body)), Properties: props}
	allocs := testing.AllocsPerRun(200, func() {
		_ = mf.write(bw)
		_ = hf.write(bw)
	})
	// Upstream allocates about 40 times for these two frames; what is left is the boxing of
	// values by the table iteration, if any.
	t.Logf("%.1f allocations", allocs)
	if allocs > 2 {
		t.Fatalf("%.1f allocations per publish's method and header frames", allocs)
	}
}

// TestChannelPublishAllocations: a publish on an open channel, through the connection's
// writer, allocates nothing but what it hands back (the deferred confirmation and its done
// channel, in confirm mode): the basic.publish method and its frames are the channel's own,
// reused under its lock (upstream: 4 more).
func TestChannelPublishAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	c := &Connection{writer: &writer{bufio.NewWriterSize(io.Discard, 64<<10)}, Config: Config{FrameSize: 128 << 10}}
	ch := newChannel(c, 1)
	pub, props := testPublishing()
	msg := Publishing{
		Headers:     Table{"x-router-route": "orders", "x-router-source": "in", "x-router-seq": int64(1 << 40)},
		ContentType: props.ContentType, MessageId: props.MessageId, DeliveryMode: 2, Body: pub.Body,
	}
	for _, confirming := range []bool{false, true} {
		ch.confirming.Store(confirming)
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := ch.PublishWithDeferredConfirm("ex", "key", true, false, msg); err != nil {
				t.Fatal(err)
			}
		})
		want := 0.0
		if confirming {
			want = 2 // the DeferredConfirmation returned, and its done channel
		}
		t.Logf("confirming %v: %.1f allocations", confirming, allocs)
		if allocs > want {
			t.Errorf("confirming %v: %.1f allocations per publish, want at most %.0f", confirming, allocs, want)
		}
	}
}

// TestEncodedHeadersWrittenAsTheTable: a content header whose headers come already encoded
// (Publishing.EncodedHeaders, a local change) is byte for byte the one written from the table,
// and reads back to it; the table beside them is ignored.
func TestEncodedHeadersWrittenAsTheTable(t *testing.T) {
	_, props := testPublishing()
	props.Headers = Table{"tenant": "acme"} // one entry: a map's order cannot differ
	var entries bytes.Buffer
	if err := writeTable(&entries, props.Headers); err != nil {
		t.Fatal(err)
	}
	write := func(p properties) []byte {
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		if err := (&headerFrame{ChannelId: 1, ClassId: 60, Size: 5, Properties: p}).write(bw); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	want := write(props)
	enc := props
	enc.Headers = Table{"ignored": true}
	enc.EncodedHeaders = entries.Bytes()[4:] // without the table's length
	got := write(enc)
	if !bytes.Equal(got, want) {
		t.Fatalf("header frame from encoded headers\n%v\nwant\n%v", got, want)
	}
	f, err := (&reader{r: bytes.NewReader(got)}).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if h := f.(*headerFrame).Properties.Headers; !reflect.DeepEqual(h, props.Headers) {
		t.Errorf("read back headers %v, want %v", h, props.Headers)
	}
}
