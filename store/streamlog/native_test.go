package streamlog

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
	"github.com/wasmrouter/wasmrouter/store"
)

// mainNative is the stream port of the machine's broker, derived from its AMQP URL as the
// router derives it (scripts/setup.sh enables the rabbitmq_stream plugin).
func mainNative(t testing.TB) *Native {
	t.Helper()
	n, err := NativeFromURL(rabbit.URL(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nodeNative is the stream port of a private node (its own port, named in the store block's
// stream_port).
func nodeNative(t testing.TB, node *rabbitnode.Node) *Native {
	t.Helper()
	n, err := NativeFromURL(node.URL(), nil, node.StreamPort())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// openLogOver opens the log on stream over the stream protocol (n) or AMQP 0-9-1 alone (nil).
func openLogOver(t *testing.T, n *Native, stream string) *Log {
	t.Helper()
	l, err := Open(rabbit.Dial(t), Options{Native: n, Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// Records read the same whichever protocol wrote them and whichever reads them: the events
// exactly, the marks as marks (skipped), the writer's message ids (a redelivery is recognised
// across protocols); RabbitMQ maps AMQP 0-9-1's type and message id to the stream
// protocol's message properties and back.
func TestRecordsReadTheSameOverEitherProtocol(t *testing.T) {
	stream := rabbit.Unique("streamlog.native")
	rabbit.DeleteQueueAtCleanup(t, stream)
	native := openLogOver(t, mainNative(t), stream)
	if native.producer == nil {
		t.Fatal("the log appends over AMQP 0-9-1 with Options.Native set")
	}
	classic := openLogOver(t, nil, stream)

	evs := make([]*event.Event, 6)
	for i := range evs {
		evs[i] = sampleEvent(i)
	}
	nativeSeqs, _ := appendAll(t, native, store.Window{}, evs[:3]...)
	classicSeqs, _ := appendAll(t, classic, store.Window{}, evs[3:]...)
	want := map[uint64]*event.Event{}
	for i, seq := range append(nativeSeqs, classicSeqs...) {
		w := *evs[i]
		w.Seq = seq
		want[seq] = &w
	}
	for name, l := range map[string]*Log{"stream protocol": native, "AMQP 0-9-1": classic} {
		got := readN(t, l, 1, len(evs)) // the logs' start marks are skipped
		for _, ev := range got {
			if !reflect.DeepEqual(ev, want[ev.Seq]) {
				t.Fatalf("read over the %s: event at seq %d is\n%#v\nwant %#v", name, ev.Seq, ev, want[ev.Seq])
			}
		}
		for seq, w := range want {
			ev, err := l.Get(seq)
			if err != nil || !reflect.DeepEqual(ev, w) {
				t.Fatalf("Get(%d) over the %s: %v, %v", seq, name, ev, err)
			}
		}
		if first := l.FirstSeq(); first != 1 {
			t.Fatalf("FirstSeq over the %s: %d, want 1", name, first)
		}
	}
	// Each recognises a redelivery of what the other wrote.
	if seqs, dups := appendAll(t, classic, everywhere, evs[0]); dups != 1 || seqs[0] != nativeSeqs[0] {
		t.Fatalf("AMQP 0-9-1 log: redelivery of an event written over the stream protocol done as seq %v (%d dups), want %d", seqs, dups, nativeSeqs[0])
	}
	if seqs, dups := appendAll(t, native, everywhere, evs[3]); dups != 1 || seqs[0] != classicSeqs[0] {
		t.Fatalf("stream protocol log: redelivery of an event written over AMQP 0-9-1 done as seq %v (%d dups), want %d", seqs, dups, classicSeqs[0])
	}
}

func TestNativeFromURL(t *testing.T) {
	for _, c := range []struct {
		url, addr, user, vhost string
		port                   int
		tls                    bool
	}{
		{"amqp://u:p@broker.example:5672/", "broker.example:5552", "u", "/", 0, false},
		{"amqp://u:p@broker.example/v1", "broker.example:5552", "u", "v1", 0, false},
		{"amqps://u:p@broker.example:5671/", "broker.example:5551", "u", "/", 0, true},
		{"amqp://u:p@broker.example:5672/", "broker.example:6000", "u", "/", 6000, false},
	} {
		n, err := NativeFromURL(c.url, nil, c.port)
		if err != nil {
			t.Fatal(err)
		}
		if n.Addr() != c.addr || n.User != c.user || n.Password != "p" || n.VHost != c.vhost || (n.TLS != nil) != c.tls {
			t.Errorf("%s (port %d): %s user %s vhost %s tls %v", c.url, c.port, n.Addr(), n.User, n.VHost, n.TLS != nil)
		}
	}
	_, err := NativeFromURL("amqp://u:secret@[::1", nil, 0)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a bad url: %v (must fail without the password)", err)
	}
}

// The heartbeat of a short takeover (1s) is raised to what the stream client accepts.
func TestNativeDialTakesAShortHeartbeat(t *testing.T) {
	rabbit.SkipIfShort(t)
	n := mainNative(t)
	n.Heartbeat = HeartbeatFor(config.MinTakeover)
	env, err := dialNative(n)
	if err != nil {
		t.Fatal(err)
	}
	_ = env.Close()
}

// A failed connection to the stream port says which port, never the password.
func TestNativeDialErrorHidesThePassword(t *testing.T) {
	rabbit.SkipIfShort(t)
	for _, port := range []int{mainNative(t).Port, 1} { // refused credentials, refused connection
		n, err := NativeFromURL("amqp://guest:s3cret-pw@127.0.0.1:5672/", nil, port)
		if err != nil {
			t.Fatal(err)
		}
		n.Heartbeat = HeartbeatFor(config.MinTakeover) // 1s: raised to what the client takes
		env, err := dialNative(n)
		if err == nil {
			_ = env.Close()
			t.Fatalf("port %d: connected with a wrong password", port)
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), n.Addr()) {
			t.Fatalf("port %d: %v (want the port named, not the password)", port, err)
		}
	}
}

// proxiedMainNative is the machine broker's stream port reached through a proxy the test can
// cut, every connection going through it whatever node the broker names.
func proxiedMainNative(t *testing.T) (*Native, *tcpproxy.Proxy) {
	t.Helper()
	via := *mainNative(t)
	proxy := tcpproxy.Start(t, via.Addr())
	host, port, _ := net.SplitHostPort(proxy.Addr())
	via.Host, via.Port, via.viaAddr = host, atoi(t, port), true
	return &via, proxy
}

// The stream protocol's connection is lost while the AMQP one stays: the appends fail (their
// sources are not acknowledged) while it is away, the log connects again by itself once the
// port answers (the store, and with it the pairs, stays), and seqs go on.
func TestReconnectAfterTheStreamConnectionIsLost(t *testing.T) {
	rabbit.SkipIfShort(t)
	via, proxy := proxiedMainNative(t)
	stream := rabbit.Unique("streamlog.native-reconnect")
	for _, q := range []string{stream, ControlStream(stream)} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := OpenReopening(ctx, dialer{rabbit.URL()}, Options{Native: via, Stream: stream}, "router-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	opened := r.Current()
	before, err := appendOne(r, sampleEvent(1))
	if err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	if seq, err := appendOne(r, sampleEvent(2)); err == nil {
		t.Fatalf("append while the stream connection is away: done as seq %d, want a failure", seq)
	}

	proxy.Restore()
	deadline := time.Now().Add(30 * time.Second)
	var after uint64
	for {
		if after, err = appendOne(r, sampleEvent(3)); err == nil {
			break
		}
		if !errors.Is(err, errStreamLost) || time.Now().After(deadline) {
			t.Fatalf("append after the port answers again: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling: the log connects again on its own schedule
	}
	if after <= before {
		t.Fatalf("append after the reconnect: seq %d, want one after %d", after, before)
	}
	if r.Current() != opened {
		t.Fatal("the store was reopened: its pairs would have moved")
	}
	if ev, err := r.Get(after); err != nil || ev.RoutingKey != sampleEvent(3).RoutingKey {
		t.Fatalf("Get(%d) after the reconnect: %v, %v", after, ev, err)
	}
}

// appendResult is an append's done, as one value.
type appendResult struct {
	seq uint64
	dup bool
	err error
}

// appendWithin appends ev (a redelivery when dedup is not empty) and waits up to 30s for it
// to be done; ok is false when it was not.
func appendWithin(l *Log, ev *event.Event, dedup store.Window) (res appendResult, ok bool) {
	done := make(chan appendResult, 1)
	l.Append(ev, store.FingerprintOf(ev), dedup, func(seq uint64, dup bool, err error) { done <- appendResult{seq, dup, err} })
	select {
	case res = <-done:
		return res, true
	case <-time.After(30 * time.Second):
		return res, false
	}
}

// A redelivery handed to the log while its stream connection is away fails at once, as a new
// event does: the catch-up mark it waits for cannot be written, and a redelivery left waiting
// for it would hold back every append after it (their sources never acknowledged, the engine
// unable to stop). Once the port answers again, the same redelivery is recognised.
func TestARedeliveryWhileTheStreamConnectionIsAwayFails(t *testing.T) {
	rabbit.SkipIfShort(t)
	via, proxy := proxiedMainNative(t)
	stream := rabbit.Unique("streamlog.native-redelivery-away")
	rabbit.DeleteQueueAtCleanup(t, stream)
	l := openLogOver(t, via, stream)
	first, ok := appendWithin(l, sampleEvent(1), store.Window{})
	if !ok || first.err != nil {
		t.Fatalf("first append: %+v (done: %t)", first, ok)
	}

	proxy.Cut()
	// A new event fails once the log has seen the connection go.
	if res, ok := appendWithin(l, sampleEvent(2), store.Window{}); !ok || res.err == nil {
		t.Fatalf("append while the stream connection is away: %+v (done: %t), want a failure", res, ok)
	}
	window := store.Window{From: first.seq, To: first.seq}
	res, ok := appendWithin(l, sampleEvent(1), window)
	if !ok {
		t.Fatal("a redelivery while the stream connection is away: not done within 30s")
	}
	if !errors.Is(res.err, errStreamLost) {
		t.Fatalf("a redelivery while the stream connection is away: %+v, want errStreamLost", res)
	}

	proxy.Restore()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, ok := appendWithin(l, sampleEvent(1), window)
		if !ok {
			t.Fatal("a redelivery after the port answers again: not done within 30s")
		}
		if res.err == nil {
			if !res.dup || res.seq != first.seq {
				t.Fatalf("a redelivery after the port answers again: %+v, want a duplicate of seq %d", res, first.seq)
			}
			break
		}
		if !errors.Is(res.err, errStreamLost) || time.Now().After(deadline) {
			t.Fatalf("a redelivery after the port answers again: %v", res.err)
		}
		time.Sleep(50 * time.Millisecond) // polling: the log connects again on its own schedule
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A delivery loop behind the records kept in memory reads the stream batch after batch, each
// from where the one before ended: every event comes once and in order, through one consumer
// kept open between the batches rather than one per batch.
func TestBatchesBehindMemoryShareOneConsumer(t *testing.T) {
	stream := rabbit.Unique("streamlog.cursor")
	rabbit.DeleteQueueAtCleanup(t, stream)
	l, err := Open(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream, Recent: 10, Recognised: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	evs := make([]*event.Event, 300)
	for i := range evs {
		evs[i] = sampleEvent(i)
	}
	seqs, _ := appendAll(t, l, store.Window{}, evs...)
	next := seqs[0]
	var got []uint64
	for next <= seqs[len(seqs)-1] {
		n, err := l.Scan(next, 25, nil, func(ev *event.Event) bool {
			if ev.RoutingKey != evs[len(got)].RoutingKey {
				t.Errorf("event %d: routing key %s, want %s", len(got), ev.RoutingKey, evs[len(got)].RoutingKey)
			}
			got = append(got, ev.Seq)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n <= next {
			t.Fatalf("Scan from %d returned %d", next, n)
		}
		next = n
	}
	if !reflect.DeepEqual(got, seqs) {
		t.Fatalf("read %v, want %v", got, seqs)
	}
	l.cursorsMu.Lock()
	opens := l.cursorOpens
	l.cursorsMu.Unlock()
	// The last batches may come from memory; every one before them from the same consumer.
	if opens != 1 {
		t.Fatalf("%d consumers opened for %d batches, want 1", opens, (len(seqs)+24)/25)
	}
	// A read elsewhere opens its own, and one from where a kept one stands reuses it.
	if _, err := l.Get(seqs[3]); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(seqs[4]); err != nil {
		t.Fatal(err)
	}
	l.cursorsMu.Lock()
	opens = l.cursorOpens
	l.cursorsMu.Unlock()
	if opens != 2 {
		t.Fatalf("%d consumers opened, want 2", opens)
	}
}

// A burst of large events, more than a frame of the stream port can hold, is appended whole
// (the client splits it into frames) and reads back exactly.
func TestABurstOfLargeEventsSpansFrames(t *testing.T) {
	stream := rabbit.Unique("streamlog.frames")
	rabbit.DeleteQueueAtCleanup(t, stream)
	l := openLogOver(t, mainNative(t), stream)
	evs := make([]*event.Event, 40) // 40 x 100 KiB: four times the largest frame of the stream port
	for i := range evs {
		evs[i] = sampleEvent(i)
		evs[i].Body = []byte(strings.Repeat(strconv.Itoa(i%10), 100<<10))
	}
	seqs, _ := appendAll(t, l, store.Window{}, evs...)
	got := readN(t, l, seqs[0], len(evs))
	for i, ev := range got {
		if ev.Seq != seqs[i] || ev.RoutingKey != evs[i].RoutingKey || string(ev.Body) != string(evs[i].Body) {
			t.Fatalf("event %d read back as %d %s (%d bytes), want %d %s (%d bytes)", i, ev.Seq, ev.RoutingKey, len(ev.Body), seqs[i], evs[i].RoutingKey, len(evs[i].Body))
		}
	}
}
