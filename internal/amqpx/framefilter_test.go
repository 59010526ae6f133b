package amqpx

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// tableBytes encodes entries (name, type, value bytes) as a field table's content.
func tableBytes(entries ...[]byte) []byte { return bytes.Join(entries, nil) }

func entry(name string, typ byte, value []byte) []byte {
	b := append([]byte{byte(len(name))}, name...)
	b = append(b, typ)
	return append(b, value...)
}

func long(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }

// nested is a table holding a table holding ... depth levels of tables.
func nested(depth int) []byte {
	inner := []byte{}
	for range depth {
		inner = entry("n", 'F', long(inner))
	}
	return inner
}

// headerFrame builds a content header frame with a content type and the given table content.
func headerFrame(table []byte) []byte {
	var p []byte
	p = binary.BigEndian.AppendUint16(p, 60)
	p = binary.BigEndian.AppendUint16(p, 0)
	p = binary.BigEndian.AppendUint64(p, 2)
	p = binary.BigEndian.AppendUint16(p, flagTypeBit|flagHeadersBit|0x1000) // + delivery mode
	p = append(p, 4)
	p = append(p, "json"...)
	p = append(p, long(table)...)
	p = append(p, 2)
	f := []byte{frameHeader, 0, 1}
	f = binary.BigEndian.AppendUint32(f, uint32(len(p)))
	f = append(f, p...)
	return append(f, frameEnd)
}

// everyType is a table with a field of every type the client decodes.
func everyType() []byte {
	return tableBytes(
		entry("t", 't', []byte{1}), entry("B", 'B', []byte{1}), entry("b", 'b', []byte{1}),
		entry("s", 's', []byte{0, 1}), entry("u", 'u', []byte{0, 1}), entry("I", 'I', []byte{0, 0, 0, 1}),
		entry("i", 'i', []byte{0, 0, 0, 1}), entry("f", 'f', []byte{0, 0, 0, 0}), entry("l", 'l', make([]byte, 8)),
		entry("d", 'd', make([]byte, 8)), entry("T", 'T', make([]byte, 8)), entry("D", 'D', make([]byte, 5)),
		entry("V", 'V', nil), entry("S", 'S', long([]byte("text"))), entry("x", 'x', long([]byte{0xff})),
		entry("A", 'A', long(append([]byte{'I', 0, 0, 0, 2}, 'S', 0, 0, 0, 0))), entry("F", 'F', long(entry("k", 'V', nil))),
	)
}

func TestFilterHeaderFrame(t *testing.T) {
	many := func(n int) []byte {
		var b []byte
		for range n {
			b = append(b, entry("k", 'V', nil)...)
		}
		return b
	}
	manyArray := func(n int) []byte { return entry("a", 'A', long(bytes.Repeat([]byte{'V'}, n))) }
	cases := []struct {
		name   string
		table  []byte
		reason string // "" when the frame must pass unchanged
	}{
		{"every type", everyType(), ""},
		{"empty", nil, ""},
		{"32 levels", nested(32), ""},
		{"33 levels", nested(33), "nested deeper than 32"},
		{"L field", entry("big", 'L', make([]byte, 8)), "field type 'L'"},
		{"8192 entries", many(8192), ""},
		{"8193 entries", many(8193), "more than 8192 entries"},
		{"8193 array elements", manyArray(8193), "more than 8192 elements"},
		{"truncated string", entry("s", 'S', []byte{0, 0, 0, 9, 'a'}), "truncated"},
		{"huge length", entry("s", 'S', []byte{0xff, 0xff, 0xff, 0xff}), "over 2 GiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := headerFrame(c.table)
			out := FilterHeaderFrame(bytes.Clone(in))
			if c.reason == "" {
				if !bytes.Equal(in, out) {
					t.Fatal("a decodable frame was changed")
				}
				return
			}
			checkFrame(t, out)
			table := tableOf(t, out)
			reason, ok := strings.CutPrefix(string(table), string(entry(undecodableKey, 'S', nil)))
			if !ok || !strings.Contains(reason, c.reason) {
				t.Fatalf("table %q, want the reason %q", table, c.reason)
			}
			if out[len(out)-2] != 2 { // the delivery mode after the table is kept
				t.Errorf("the properties after the table were not kept")
			}
		})
	}
}

// TestFrameFilterStream passes a stream of frames through the filter in small reads.
func TestFrameFilterStream(t *testing.T) {
	body := append([]byte{3, 0, 1, 0, 0, 0, 5}, "hello"...)
	body = append(body, frameEnd)
	bad := headerFrame(entry("big", 'L', make([]byte, 8)))
	good := headerFrame(everyType())
	stream := bytes.Join([][]byte{good, body, bad, body}, nil)
	f := newFrameFilter(bytes.NewReader(stream))
	var out []byte
	buf := make([]byte, 3)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := bytes.Join([][]byte{good, body, FilterHeaderFrame(bytes.Clone(bad)), body}, nil)
	if !bytes.Equal(out, want) {
		t.Fatalf("filtered stream differs:\n got %x\nwant %x", out, want)
	}
}

func checkFrame(t testing.TB, frame []byte) {
	t.Helper()
	if len(frame) < 8 || frame[len(frame)-1] != frameEnd || int(binary.BigEndian.Uint32(frame[3:7])) != len(frame)-8 {
		t.Fatalf("malformed frame %x", frame)
	}
}

// tableOf returns the header table content of a frame built by headerFrame.
func tableOf(t testing.TB, frame []byte) []byte {
	t.Helper()
	p := frame[7 : len(frame)-1]
	pos := 14 + 1 + int(p[14])
	n := binary.BigEndian.Uint32(p[pos:])
	return p[pos+4 : pos+4+int(n)]
}

// FuzzHeaderTable runs header tables through the filter as the router's connections do:
// whatever the table (deep nesting, huge counts, every field type, garbage), the output is a
// well-formed frame whose table the client decodes, unchanged when the input already was.
func FuzzHeaderTable(f *testing.F) {
	f.Add(everyType())
	f.Add(nested(32))
	f.Add(nested(33))
	f.Add(nested(200))
	f.Add(entry("big", 'L', make([]byte, 8)))
	f.Add(entry("a", 'A', long(bytes.Repeat([]byte{'V'}, 9000))))
	f.Add(entry("s", 'S', []byte{0xff, 0xff, 0xff, 0xff}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, table []byte) {
		in := headerFrame(table)
		out := FilterHeaderFrame(bytes.Clone(in))
		checkFrame(t, out)
		if err := checkTable(tableOf(t, out), 0); err != nil {
			t.Fatalf("the filtered table is still undecodable: %v", err)
		}
		if checkTable(table, 0) == nil && !bytes.Equal(in, out) {
			t.Fatal("a decodable table was changed")
		}
		if again := FilterHeaderFrame(bytes.Clone(out)); !bytes.Equal(again, out) {
			t.Fatal("filtering is not idempotent")
		}
	})
}

// methodFrame builds a method frame on channel 1 with the class and method ids and arguments.
func methodFrame(class, method uint16, args []byte) []byte {
	p := binary.BigEndian.AppendUint16(nil, class)
	p = binary.BigEndian.AppendUint16(p, method)
	p = append(p, args...)
	f := []byte{frameMethod, 0, 1}
	f = binary.BigEndian.AppendUint32(f, uint32(len(p)))
	f = append(f, p...)
	return append(f, frameEnd)
}

// TestFrameFilterCountsReturns: the basic.return frames are counted as the filter reads them,
// and only they; the stream passes unchanged.
func TestFrameFilterCountsReturns(t *testing.T) {
	ret := methodFrame(60, 50, append([]byte{0, 200, 3}, "ret"...))
	ack := methodFrame(60, 80, make([]byte, 9))
	deliver := methodFrame(60, 60, make([]byte, 12))
	short := []byte{frameMethod, 0, 1, 0, 0, 0, 0, frameEnd} // no ids: passed, not counted
	good := headerFrame(everyType())
	stream := bytes.Join([][]byte{ret, good, ack, deliver, short, ret, ack, ret}, nil)
	var counts returnCounts
	f := newFrameFilter(bytes.NewReader(stream))
	f.returns = &counts
	var out []byte
	buf := make([]byte, 5)
	seenAfter := map[int]uint64{} // bytes read -> count
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		seenAfter[len(out)] = counts.seen.Load()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out, stream) {
		t.Fatalf("stream changed:\n got %x\nwant %x", out, stream)
	}
	if got := counts.seen.Load(); got != 3 {
		t.Fatalf("seen %d returns, want 3", got)
	}
	// The first return is counted by the time its first bytes are read, before what follows.
	if got := seenAfter[5]; got != 1 {
		t.Fatalf("after the first read %d returns seen, want 1", got)
	}
	if counts.settled() {
		t.Fatal("settled with nothing applied")
	}
	counts.applied.Add(3)
	if !counts.settled() {
		t.Fatal("not settled with every return applied")
	}
}
