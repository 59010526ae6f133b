package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wasmrouter/wasmrouter/internal/logquery"
)

// errNotInLog is a seq the running router's log does not hold.
var errNotInLog = errors.New("not in the log")

func isNoRouter(err error) bool { return errors.Is(err, errNoRouter) }

// resumeHeader names the seq a search the router cut short goes on from (see
// admin.ResumeHeader).
const resumeHeader = "X-Resume-From-Seq"

// listEvents prints what GET /api/v1/events selects, following the router's resume seq until
// the selection is done or q.Limit events came (0: no limit).
func (c *adminClient) listEvents(ctx context.Context, q *logquery.Query, fn func(logquery.Record) error) error {
	sel := *q
	n := 0
	for {
		page := sel
		page.Limit = logquery.MaxLimit
		if q.Limit > 0 {
			page.Limit = min(logquery.MaxLimit, q.Limit-n)
		}
		got, lastSeq := 0, uint64(0)
		resume, err := c.eventsPage(ctx, page.Values(), func(rec logquery.Record) error {
			got++
			lastSeq = rec.Seq
			return fn(rec)
		})
		if err != nil {
			return err
		}
		n += got
		switch {
		case q.Limit > 0 && n >= q.Limit:
			return nil
		case resume > 0:
			sel.From = resume
		case got == page.Limit:
			sel.From = lastSeq + 1
		default:
			return nil
		}
	}
}

// eventsPage reads one answer of GET /api/v1/events, decoding the array as it comes.
func (c *adminClient) eventsPage(ctx context.Context, query url.Values, fn func(logquery.Record) error) (resume uint64, err error) {
	const path = "/api/v1/events"
	resp, err := c.send(ctx, http.MethodGet, path+"?"+query.Encode(), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, c.statusError(http.MethodGet, path, resp.StatusCode, readAnswer(resp.Body))
	}
	dec := json.NewDecoder(resp.Body)
	unexpected := func(err error) error {
		return fmt.Errorf("admin API at %s: GET %s: unexpected answer: %w", c.addr, path, err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return 0, unexpected(fmt.Errorf("not a JSON array (%v)", err))
	}
	for dec.More() {
		var rec logquery.Record
		if err := dec.Decode(&rec); err != nil {
			return 0, unexpected(err)
		}
		if err := fn(rec); err != nil {
			return 0, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return 0, unexpected(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // the trailer comes after the body
	v := resp.Header.Get(resumeHeader)
	if v == "" {
		v = resp.Trailer.Get(resumeHeader)
	}
	if v != "" {
		if resume, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, unexpected(fmt.Errorf("%s %q", resumeHeader, v))
		}
	}
	return resume, nil
}

// event fetches one event (GET /api/v1/events/{seq}); errNotInLog when the log lacks it.
func (c *adminClient) event(ctx context.Context, seq uint64) (logquery.Record, error) {
	path := "/api/v1/events/" + strconv.FormatUint(seq, 10)
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return logquery.Record{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(readAnswer(resp.Body), &e)
		return logquery.Record{}, fmt.Errorf("%w: %s", errNotInLog, strings.TrimPrefix(e.Error, "not found: "))
	default:
		return logquery.Record{}, c.statusError(http.MethodGet, path, resp.StatusCode, readAnswer(resp.Body))
	}
	var d logquery.Detail
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return logquery.Record{}, fmt.Errorf("admin API at %s: GET %s: unexpected answer: %w", c.addr, path, err)
	}
	return d.Record, nil
}

// lastPage is what lastEvents found: the records, and the log's last seq then.
type lastPage struct {
	records []logquery.Record
	lastSeq uint64
}

// lastEvents returns the last n events q selects, oldest first, reading the running router's
// log backwards in windows.
func (c *adminClient) lastEvents(ctx context.Context, q *logquery.Query, n int) (lastPage, error) {
	var st struct {
		Store struct {
			FirstSeq uint64 `json:"first_seq"`
			LastSeq  uint64 `json:"last_seq"`
		} `json:"store"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &st, http.StatusOK); err != nil {
		return lastPage{}, err
	}
	const window = 4096
	out := lastPage{lastSeq: st.Store.LastSeq}
	first, hi := st.Store.FirstSeq, st.Store.LastSeq
	for first > 0 && hi >= first && len(out.records) < n {
		lo := first
		if hi-first >= window {
			lo = hi - window + 1
		}
		sel := *q
		sel.From, sel.To, sel.Limit = lo, hi, 0
		var chunk []logquery.Record
		if err := c.listEvents(ctx, &sel, func(rec logquery.Record) error {
			chunk = append(chunk, rec)
			return nil
		}); err != nil {
			return out, err
		}
		out.records = append(chunk, out.records...)
		hi = lo - 1
	}
	if len(out.records) > n {
		out.records = out.records[len(out.records)-n:]
	}
	return out, nil
}

// followEvents prints the events the running router logs from seq from on, from its event
// stream, until ctx ends or the router goes.
func (c *adminClient) followEvents(ctx context.Context, q *logquery.Query, from uint64, fn func(logquery.Record) error) error {
	const path = "/api/v1/events/stream"
	query := q.Values()
	query.Del("limit")
	query.Set("from_seq", strconv.FormatUint(from, 10))
	// The stream has no end: only the connection is bounded by the client's timeouts.
	resp, err := c.send(ctx, http.MethodGet, path+"?"+query.Encode(), nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.statusError(http.MethodGet, path, resp.StatusCode, readAnswer(resp.Body))
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var data strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("admin API at %s: the event stream ended: %w", c.addr, err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "" && data.Len() > 0:
			var rec logquery.Record
			if err := json.Unmarshal([]byte(data.String()), &rec); err != nil {
				return fmt.Errorf("admin API at %s: event stream: %w", c.addr, err)
			}
			data.Reset()
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
}
