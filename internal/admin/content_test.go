package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fakeContent serves a fixed list of events; Follow sends the events from `from` on, then
// whatever is pushed on live, until the client goes.
type fakeContent struct {
	events []map[string]any
	resume uint64
	live   chan map[string]any
}

func (f *fakeContent) Events(_ context.Context, q url.Values, emit func(any) error) (uint64, error) {
	if q.Has("bogus") {
		return 0, fmt.Errorf("%w: unknown parameter", ErrBadRequest)
	}
	for _, ev := range f.events {
		if err := emit(ev); err != nil {
			return 0, err
		}
	}
	return f.resume, nil
}

func (f *fakeContent) Event(seq uint64) (any, error) {
	for _, ev := range f.events {
		if ev["seq"] == float64(seq) {
			return ev, nil
		}
	}
	return nil, fmt.Errorf("%w: seq %d", ErrNotFound, seq)
}

func (f *fakeContent) Follow(ctx context.Context, q url.Values, from uint64, emit func(uint64, any) error, idle func() error) error {
	if q.Has("limit") {
		return fmt.Errorf("%w: a stream takes no limit", ErrBadRequest)
	}
	if err := idle(); err != nil {
		return err
	}
	for _, ev := range f.events {
		if seq := uint64(ev["seq"].(float64)); seq >= from {
			if err := emit(seq, ev); err != nil {
				return err
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-f.live:
			if err := emit(uint64(ev["seq"].(float64)), ev); err != nil {
				return err
			}
		}
	}
}

func (f *fakeContent) LogStats() (any, error) { return map[string]int{"count": len(f.events)}, nil }

func newFakeContent() *fakeContent {
	return &fakeContent{
		events: []map[string]any{
			{"seq": float64(1), "routing_key": "order.created", "body": "<script>alert(1)</script>"},
			{"seq": float64(2), "routing_key": "payment.done", "body": "{}"},
		},
		live: make(chan map[string]any),
	}
}

func TestContentEndpointsNeedTheTokenWhenOneIsSet(t *testing.T) {
	paths := []string{"/api/v1/events", "/api/v1/events/1", "/api/v1/events/stream", "/api/v1/dlq"}
	secured := newTestServerWith(t, Options{Token: "s3cret", Engine: fakeEngine{ready: true}, Content: newFakeContent(), DeadLetters: &fakeDeadLetters{}})
	open := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}, Content: newFakeContent(), DeadLetters: &fakeDeadLetters{}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status := func(base, path, token string) int {
		t.Helper()
		// The stream answers and then stays open: the status line is all this needs.
		rctx, rcancel := context.WithCancel(ctx)
		defer rcancel()
		resp := request(t, rctx, http.MethodGet, base+path, token, "")
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range paths {
		for _, token := range []string{"", "wrong", "s3cre", "s3cret0"} {
			if code := status(secured.URL, p, token); code != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: %d, want 401", p, token, code)
			}
		}
		if code := status(secured.URL, p, "s3cret"); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", p, code)
		}
		if code := status(open.URL, p, ""); code != http.StatusOK {
			t.Errorf("GET %s with no token set: %d, want 200", p, code)
		}
	}
	// Status endpoints stay open with a token set.
	for _, p := range []string{"/api/v1/status", "/api/v1/counters", "/api/v1/log/stats", "/api/v1/replay", "/healthz"} {
		if code := status(secured.URL, p, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", p, code)
		}
	}
}

func TestEventsAnswers(t *testing.T) {
	c := newFakeContent()
	c.resume = 77
	srv := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}, Content: c})
	resp, err := http.Get(srv.URL + "/api/v1/events?key=order.*")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(list) != 2 || list[0]["body"] != "<script>alert(1)</script>" {
		t.Errorf("list: %v", list)
	}
	if got := resp.Header.Get(ResumeHeader); got != "77" {
		t.Errorf("%s = %q, want 77", ResumeHeader, got)
	}
	for _, h := range []string{"X-Content-Type-Options", "Content-Security-Policy", "X-Frame-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("answer lacks %s", h)
		}
	}
	var answer map[string]string
	if code := call(t, "GET", srv.URL+"/api/v1/events?bogus=1", "", "", &answer); code != http.StatusBadRequest {
		t.Errorf("bad query: %d, want 400", code)
	}
	if code := call(t, "GET", srv.URL+"/api/v1/events/9", "", "", &answer); code != http.StatusNotFound {
		t.Errorf("missing seq: %d, want 404", code)
	}
	if code := call(t, "GET", srv.URL+"/api/v1/events/x", "", "", &answer); code != http.StatusBadRequest {
		t.Errorf("bad seq: %d, want 400", code)
	}
	if code := call(t, "GET", srv.URL+"/api/v1/events/stream?limit=3", "", "", &answer); code != http.StatusBadRequest {
		t.Errorf("bad stream query: %d, want 400", code)
	}
	none := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}})
	if code := call(t, "GET", none.URL+"/api/v1/events", "", "", &answer); code != http.StatusNotImplemented {
		t.Errorf("no content: %d, want 501", code)
	}
}

// readSSE reads server-sent events until n "event" messages came, returning their ids and data.
func readSSE(t *testing.T, r *bufio.Reader, n int) (ids, data []string) {
	t.Helper()
	var id, d string
	for len(ids) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", len(ids), err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && id != "":
			ids, data = append(ids, id), append(data, d)
			id, d = "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			d = strings.TrimPrefix(line, "data: ")
		}
	}
	return ids, data
}

func TestEventStream(t *testing.T) {
	c := newFakeContent()
	srv := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}, Content: c, MaxStreams: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(header http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events/stream", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// Reconnecting after seq 1 resumes at 2.
	first := open(http.Header{"Last-Event-Id": {"1"}})
	if first.StatusCode != http.StatusOK || first.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s %s", first.Status, first.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(first.Body)
	ids, _ := readSSE(t, r, 1)
	if ids[0] != "2" {
		t.Fatalf("first id %s, want 2 (after Last-Event-ID 1)", ids[0])
	}
	c.live <- map[string]any{"seq": float64(3), "body": "new"}
	ids, data := readSSE(t, r, 1)
	if ids[0] != "3" || !strings.Contains(data[0], `"new"`) {
		t.Fatalf("live event: %v %v", ids, data)
	}
	// The limit: a third stream is refused while two are open.
	second := open(nil)
	if second.StatusCode != http.StatusOK {
		t.Fatalf("second stream: %s", second.Status)
	}
	third := open(nil)
	if third.StatusCode != http.StatusServiceUnavailable || third.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %s, want 503 with Retry-After", third.Status)
	}
	// Closing one frees its slot, as soon as the server sees the client gone.
	second.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		again := open(nil)
		if again.StatusCode == http.StatusOK {
			break
		}
		again.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after closing one: %s, want 200", again.Status)
		}
		time.Sleep(10 * time.Millisecond) // the server notices the close on its own time
	}
}
