package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Content answers the content endpoints: logged events, one event with where it went, and
// the stream of new ones. nil disables them.
type Content interface {
	// Events calls emit for the events query selects, oldest first. A non-zero resume is the
	// seq a search cut short (to answer in bounded time) goes on from.
	Events(ctx context.Context, query url.Values, emit func(record any) error) (resume uint64, err error)
	// Event is one event in detail; ErrNotFound when the log does not hold it.
	Event(seq uint64) (any, error)
	// Follow calls emit for each event query selects from seq from on (0: from the next one
	// logged) as they are logged, and idle once the query is accepted and after each quiet
	// interval, until ctx ends or either fails.
	Follow(ctx context.Context, query url.Values, from uint64, emit func(seq uint64, record any) error, idle func() error) error
	// LogStats answers GET /api/v1/log/stats, what `router log stats` prints.
	LogStats() (any, error)
}

// ErrNotFound marks what the router does not have (404).
var ErrNotFound = errors.New("not found")

// DefaultMaxStreams bounds concurrent event streams unless Options.MaxStreams says otherwise:
// each holds a connection and reads the log as it grows.
const DefaultMaxStreams = 16

// ResumeHeader names the seq a search cut short goes on from (as from_seq).
const ResumeHeader = "X-Resume-From-Seq"

// pageBuffer is how much of a page of events is held to send the resume header before the
// body; a larger page is streamed, and the resume seq then comes as a trailer.
const pageBuffer = 8 << 20

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	if s.opts.Content == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "the event log is not available"})
		return
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	n, streaming := 0, false
	resume, err := s.opts.Content.Events(r.Context(), r.URL.Query(), func(rec any) error {
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		if err := enc.Encode(rec); err != nil {
			return err
		}
		if buf.Len() < pageBuffer {
			return nil
		}
		if !streaming {
			streaming = true
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
		}
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err
	})
	switch {
	case err != nil && !streaming:
		writeError(w, err)
		return
	case err != nil:
		// The status is sent: cut the array short, so that a reader sees invalid JSON rather
		// than a complete-looking page.
		s.opts.Logger.Warn("event search failed midway", "error", err, "events", n)
		return
	}
	buf.WriteString("]\n")
	if !streaming {
		w.Header().Set("Content-Type", "application/json")
		if resume > 0 {
			w.Header().Set(ResumeHeader, strconv.FormatUint(resume, 10))
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(buf.Bytes())
		return
	}
	if resume > 0 {
		w.Header().Set(http.TrailerPrefix+ResumeHeader, strconv.FormatUint(resume, 10))
	}
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	if s.opts.Content == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "the event log is not available"})
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%q is not a seq", r.PathValue("seq"))})
		return
	}
	ev, err := s.opts.Content.Event(seq)
	if errors.Is(err, ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

func (s *Server) logStats(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Content == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "the event log is not available"})
		return
	}
	st, err := s.opts.Content.LogStats()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// sseIdle is how often a quiet stream sends a comment, so that proxies and clients see the
// connection alive and a gone client is noticed.
const sseIdle = 15 * time.Second

// streamEvents answers GET /api/v1/events/stream with server-sent events: one "event" message
// per newly logged event, its id the seq (a client reconnecting with Last-Event-ID goes on
// after it). from_seq starts further back.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	if s.opts.Content == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "the event log is not available"})
		return
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": fmt.Sprintf("too many event streams open (%d); close one or try later", cap(s.streams)),
		})
		return
	}
	query := r.URL.Query()
	var from uint64
	if v := query.Get("from_seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("from_seq %q is not a number", v)})
			return
		}
		from = n
		query.Del("from_seq")
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if n, err := strconv.ParseUint(id, 10, 64); err == nil {
			from = n + 1
		}
	}
	rc := http.NewResponseController(w)
	// A stream outlives any write timeout the server sets for ordinary answers.
	_ = rc.SetWriteDeadline(time.Time{})
	started := false
	start := func() error {
		if started {
			return nil
		}
		started = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write([]byte(": stream of logged events\n\n"))
		if err == nil {
			err = rc.Flush()
		}
		return err
	}
	// Bad parameters are found before the first event: answer them with a 400, not a stream.
	err := s.opts.Content.Follow(r.Context(), query, from,
		func(seq uint64, rec any) error {
			if err := start(); err != nil {
				return err
			}
			data, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", seq, data); err != nil {
				return err
			}
			return rc.Flush()
		},
		func() error {
			if err := start(); err != nil {
				return err
			}
			if _, err := w.Write([]byte(": idle\n\n")); err != nil {
				return err
			}
			return rc.Flush()
		})
	if err != nil && !started && r.Context().Err() == nil {
		writeError(w, err)
	}
}
