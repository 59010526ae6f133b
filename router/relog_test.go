package router_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
	"github.com/wasmrouter/wasmrouter/store"
)

// attemptsPublisher takes encoded headers (so that a stream encodes its messages from the
// log's bytes) and records a copy of every attempt by seq; the first attempt of a seq in
// nack is refused, of one in lost resolves as an outage, every other attempt is confirmed.
type attemptsPublisher struct {
	mu       sync.Mutex
	attempts map[int64][]attempt
	nack     map[int64]bool
	lost     map[int64]bool
	refuse   map[int64]bool // every attempt refused
}

type attempt struct {
	msg  event.Message
	body uintptr // where the body published was: a resend read again from the log has its own
}

type doneConfirm struct {
	done chan struct{}
	err  error
}

func (c *doneConfirm) Done() <-chan struct{} { return c.done }
func (c *doneConfirm) Err() error            { <-c.done; return c.err }

func (p *attemptsPublisher) TakesEncodedHeaders() bool { return true }

func (p *attemptsPublisher) Publish(ctx context.Context, m *event.Message) (event.Confirmation, error) {
	seq := seqOfEncoded(m.EncodedHeaders)
	// Everything copied, strings too: the stream may read its next events into the memory
	// of these (router.Publisher).
	c := m.Clone()
	p.mu.Lock()
	defer p.mu.Unlock()
	first := len(p.attempts[seq]) == 0
	p.attempts[seq] = append(p.attempts[seq], attempt{msg: c, body: uintptr(unsafe.Pointer(unsafe.SliceData(m.Body)))})
	conf := &doneConfirm{done: make(chan struct{})}
	switch {
	case p.refuse[seq]:
		conf.err = fmt.Errorf("refused: %w", event.ErrRefused)
	case first && p.nack[seq]:
		conf.err = fmt.Errorf("nack: %w", event.ErrRefused)
	case first && p.lost[seq]:
		conf.err = fmt.Errorf("connection lost: %w", event.ErrUnreachable)
	}
	close(conf.done)
	return conf, nil
}

func (p *attemptsPublisher) WaitReady(context.Context) error { return nil }
func (p *attemptsPublisher) Hold() func()                    { return func() {} }
func (p *attemptsPublisher) Cluster() string                 { return "main" }
func (p *attemptsPublisher) Close() error                    { return nil }

func (p *attemptsPublisher) delivered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for seq, a := range p.attempts {
		if len(a) > 1 && !p.refuse[seq] || !p.nack[seq] && !p.lost[seq] && !p.refuse[seq] {
			n++
		}
	}
	return n
}

// seqOfEncoded finds the x-router-seq entry (a long long int) in an encoded header table.
func seqOfEncoded(h []byte) int64 {
	name := []byte{byte(len(event.HeaderSeq))}
	name = append(append(name, event.HeaderSeq...), 'l')
	i := bytes.Index(h, name)
	if i < 0 || i+len(name)+8 > len(h) {
		return -1
	}
	var v int64
	for _, b := range h[i+len(name) : i+len(name)+8] {
		v = v<<8 | int64(b)
	}
	return v
}

// A stream reading its backlog from the log's file encodes each message from the log's bytes
// and lets go of it once written; a message the target refused (a nack) or lost in an outage
// is read from the log again and sent again the same: exchange, key, properties, body and
// every header byte.
func TestAResendReadAgainFromTheLogIsTheSameMessage(t *testing.T) {
	path := t.TempDir() + "/log.db"
	st, err := store.Open(store.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	done := make(chan error, n)
	for i := range n {
		ev := &event.Event{
			Source: "in", RoutingKey: fmt.Sprintf("k.%d", i), Exchange: "events",
			Props:   event.Properties{MessageID: fmt.Sprintf("m%d", i), ContentType: "text/plain", DeliveryMode: 2},
			Headers: event.Table{"h": fmt.Sprintf("v%d", i), "n": int32(i)},
			Body:    []byte(fmt.Sprintf("body %d", i)),
		}
		st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// The pair's cursor at the start of the log, and the log reopened: the stream reads its
	// backlog from the file, not from the ring of recent events.
	if err := st.ResetCursor(router.CursorName("r", "a", ""), 0); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(store.Options{Path: path, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	pub := &attemptsPublisher{attempts: map[int64][]attempt{},
		nack: map[int64]bool{3: true, 17: true, 40: true}, lost: map[int64]bool{5: true, 18: true},
		refuse: map[int64]bool{9: true}}
	e, err := router.New(router.Options{
		Topology: nextTopology(t, `
target "a" {
  cluster  = "main"
  exchange = "xa"
}
route "r" {
  source  = "in"
  targets = ["a"]
  retry {
    attempts    = 3
    backoff     = "1ms"
    max_backoff = "2ms"
  }
}
`),
		Log:        st,
		Sources:    map[string]router.Source{"in": routertest.NewSource("in")},
		Publishers: func(string) ([]router.Publisher, error) { return []router.Publisher{pub}, nil },
		Metrics:    router.NewMetrics(prometheus.NewRegistry()),
		Window:     8,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- e.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	r := &rig{t: t}
	r.waitFor("every event delivered", func() bool { return pub.delivered() == n-1 })
	r.waitFor("the cursor at the end", func() bool {
		pos, _ := st.Cursor(router.CursorName("r", "a", ""))
		return pos == n
	})

	pub.mu.Lock()
	defer pub.mu.Unlock()
	for seq := int64(1); seq <= n; seq++ {
		as := pub.attempts[seq]
		want := 1
		switch {
		case pub.refuse[seq]:
			want = 3 // the route's attempts, then a dead letter
		case pub.nack[seq] || pub.lost[seq]:
			want = 2
		}
		if len(as) != want {
			t.Fatalf("seq %d: %d attempts, want %d", seq, len(as), want)
		}
		if as[0].msg.EncodedHeaders == nil || as[0].msg.Headers != nil {
			t.Fatalf("seq %d: not encoded from the log's bytes", seq)
		}
		if m := as[0].msg; string(m.Body) != fmt.Sprintf("body %d", seq-1) || m.RoutingKey != fmt.Sprintf("k.%d", seq-1) ||
			m.Props.MessageID != fmt.Sprintf("m%d", seq-1) || m.Props.ContentType != "text/plain" {
			t.Fatalf("seq %d: sent as %+v", seq, m)
		}
		if want == 1 {
			continue
		}
		for _, a := range as[1:] {
			if !reflect.DeepEqual(as[0].msg, a.msg) {
				t.Errorf("seq %d: sent again as\n%+v\nfirst as\n%+v", seq, a.msg, as[0].msg)
			}
			if as[0].body == a.body {
				t.Errorf("seq %d: sent again from the same memory: the window kept the message it had written", seq)
			}
		}
	}
	var dls []event.DeadLetter
	if err := st.DeadLetters(1, 0, func(d event.DeadLetter) bool { dls = append(dls, d); return true }); err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Seq != 9 || dls[0].Target != "a" || dls[0].Attempts != 3 {
		t.Fatalf("dead letters %+v, want seq 9 to target a after 3 attempts", dls)
	}
}
