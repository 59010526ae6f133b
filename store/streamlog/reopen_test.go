package streamlog

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
	"github.com/wasmrouter/wasmrouter/store"
)

// dialer connects through url until it succeeds or ctx ends, as amqpx's Cluster hands out its
// connection once it is up.
type dialer struct{ url string }

func (d dialer) Connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		conn, err := amqp.DialConfig(d.url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func appendOne(r *Reopening, ev *event.Event) (uint64, error) {
	type result struct {
		seq uint64
		err error
	}
	done := make(chan result, 1)
	r.Append(ev, r.Fingerprint(ev), store.Window{}, func(seq uint64, _ bool, err error) { done <- result{seq, err} })
	select {
	case res := <-done:
		return res.seq, res.err
	case <-time.After(30 * time.Second):
		return 0, errors.New("append not done within 30s")
	}
}

// The log survives the loss of its connection: appends fail while it is away, then go on
// with later seqs; the router's own cursors are kept; the pair is claimed again with its
// position.
func TestReopeningAfterTheConnectionIsLost(t *testing.T) {
	rabbit.SkipIfShort(t)
	proxy := tcpproxy.Start(t, rabbit.Addr(t))
	stream := rabbit.Unique("streamlog.reopen")
	const pair = store.DeliveryCursorPrefix + "orders/analytics"
	for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, pair)} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := OpenReopening(ctx, dialer{rabbit.URLVia(t, proxy.Addr())}, Options{Native: mainNative(t), Stream: stream}, "router-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })

	before, err := appendOne(r, sampleEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := r.Claim(pair)
	if err != nil {
		t.Fatal(err)
	}
	waitGranted(t, lease, 10*time.Second)
	r.SetCursor(pair, before)
	waitPosition(t, lease, before+1)
	r.SetCursor("ingest/acknowledged", before)

	changed := r.Changed()
	proxy.Cut()
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("the lost connection was not noticed")
	}
	if _, err := appendOne(r, sampleEvent(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append while the connection is away: %v, want ErrClosed", err)
	}
	select {
	case <-lease.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the pair is still held without a connection")
	}

	// Meanwhile its bounds read as an empty log: a query waits for the reopen rather than
	// answer an empty list.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	listed := 0
	_, err = logquery.List(short, r, &logquery.Query{}, 0, func(*event.Event) error { listed++; return nil })
	cancelShort()
	if err == nil {
		t.Fatalf("a search while the log reopens listed %d events and no error", listed)
	}

	proxy.Restore()
	readable, cancelReadable := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelReadable()
	if err := r.WaitReadable(readable); err != nil {
		t.Fatalf("the log did not become readable again: %v", err)
	}
	if r.Current() == nil {
		t.Fatal("WaitReadable returned before the log reopened")
	}
	after, err := appendOne(r, sampleEvent(3))
	if err != nil || after <= before {
		t.Fatalf("append after the reopen: seq %d, %v; want a seq after %d", after, err, before)
	}
	if pos, _ := r.Cursor("ingest/acknowledged"); pos != before {
		t.Fatalf("the router's own cursor reads %d after the reopen, want %d", pos, before)
	}
	lease, err = r.Claim(pair)
	if err != nil {
		t.Fatal(err)
	}
	waitGranted(t, lease, 10*time.Second)
	if pos, _ := r.Cursor(pair); pos != before {
		t.Fatalf("the pair's cursor reads %d after the reopen, want %d", pos, before)
	}
	if ev, err := r.Get(after); err != nil || ev.RoutingKey != sampleEvent(3).RoutingKey {
		t.Fatalf("Get(%d) after the reopen: %v, %v", after, ev, err)
	}
}
