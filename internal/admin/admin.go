// Package admin serves the HTTP API of docs/admin-api.md: metrics, health, readiness, status,
// replay jobs, and (an extension) dead letters and their redrive. Reads are open; mutating
// calls need the bearer token when one is set.
package admin

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 64 << 10

// Engine is what the API reads and drives.
type Engine interface {
	// Status is marshalled as /api/v1/status; ready, reason and detail (what needs an operator
	// without making the router unready) make /readyz.
	StatusJSON() (ready bool, reason string, detail []string, status any)
}

// Replayer starts and reports replay jobs; nil disables the replay endpoints.
type Replayer interface {
	StartReplay(ctx context.Context, body []byte) (id string, err error)
	ReplayStatus(id string) (any, bool)
	// StopReplay cancels a running job; false when there is no such job.
	StopReplay(id string) bool
}

// DeadLetters lists and redrives dead letters; nil disables the dlq endpoints.
type DeadLetters interface {
	// ListDeadLetters answers GET /api/v1/dlq, selecting by the query's parameters.
	ListDeadLetters(query url.Values) (any, error)
	// RedriveDeadLetters starts a redrive job for the selection in body, followed like a
	// replay job, and returns its id and the ids of the dead letters it redrives. It starts
	// no job, and returns no id, when nothing is selected.
	RedriveDeadLetters(ctx context.Context, body []byte) (id string, ids []uint64, err error)
}

// ErrBadRequest marks a request the caller got wrong (400, not 500).
var ErrBadRequest = errors.New("bad request")

// ErrUnavailable marks an answer the router cannot give yet (503, with Retry-After).
var ErrUnavailable = errors.New("unavailable")

// Options configure the server.
type Options struct {
	Reloader    Reloader // nil disables /api/v1/reload and /api/v1/config
	Addr        string
	Token       string
	Gatherer    prometheus.Gatherer
	Engine      Engine
	Replayer    Replayer
	DeadLetters DeadLetters
	// Content serves the content endpoints (events, event stream, log stats); nil disables them.
	Content Content
	// Console serves the web console's pages and assets; nil leaves it out.
	Console http.Handler
	// MaxStreams bounds concurrent event streams (DefaultMaxStreams when 0).
	MaxStreams int
	// MaxConns bounds open connections (DefaultMaxConns when 0).
	MaxConns int
	Logger   *slog.Logger
}

// Server is the admin HTTP server.
type Server struct {
	opts    Options
	srv     *http.Server
	ln      net.Listener
	conns   *connLimiter
	streams chan struct{} // one slot per open event stream
}

// CheckAddr refuses a non-loopback address without a token (docs/admin-api.md).
func CheckAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if token != "" {
		return nil
	}
	if strings.EqualFold(host, "localhost") { // as the configuration check does
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("admin_addr " + addr + " is not a loopback address and admin_token is empty")
	}
	return nil
}

// Listen binds the address; Serve then answers on it.
func Listen(opts Options) (*Server, error) {
	if err := CheckAddr(opts.Addr, opts.Token); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts}
	s.conns = newConnLimiter(ln, cmp.Or(opts.MaxConns, DefaultMaxConns))
	s.ln = s.conns
	s.srv = &http.Server{
		Handler:           deadlines(s.Handler()),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         s.conns.track,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shutdownCtx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler is the API's routing, exposed for tests.
func (s *Server) Handler() http.Handler {
	if s.streams == nil {
		s.streams = make(chan struct{}, cmp.Or(s.opts.MaxStreams, DefaultMaxStreams))
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, reason, detail, _ := s.opts.Engine.StatusJSON()
		answer := readyAnswer{Status: "ready", Detail: detail}
		code := http.StatusOK
		if !ready {
			answer.Status, answer.Reason, code = "not ready", reason, http.StatusServiceUnavailable
		}
		writeJSON(w, code, answer)
	})
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		_, _, _, st := s.opts.Engine.StatusJSON()
		writeJSON(w, http.StatusOK, st)
	})
	mux.Handle("POST /api/v1/replay", s.authorized(http.HandlerFunc(s.startReplay)))
	mux.HandleFunc("GET /api/v1/replay/{id}", s.replayStatus)
	mux.Handle("DELETE /api/v1/replay/{id}", s.authorized(http.HandlerFunc(s.stopReplay)))
	// Dead letters name events: their list is a content endpoint.
	mux.Handle("GET /api/v1/dlq", s.authorized(http.HandlerFunc(s.listDeadLetters)))
	mux.Handle("POST /api/v1/dlq/replay", s.authorized(http.HandlerFunc(s.redriveDeadLetters)))
	s.registerPprof(mux)
	s.contentRoutes(mux)
	s.reloadRoutes(mux)
	return secure(mux)
}

// readyAnswer is the body of /readyz.
type readyAnswer struct {
	Status string   `json:"status"`
	Reason string   `json:"reason,omitempty"`
	Detail []string `json:"detail,omitempty"`
}

// authorized requires "Authorization: Bearer TOKEN" when a token is configured.
func (s *Server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wasmrouter"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func (s *Server) startReplay(w http.ResponseWriter, r *http.Request) {
	if s.opts.Replayer == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "replay is not available"})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	id, err := s.opts.Replayer.StartReplay(r.Context(), body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id})
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.opts.DeadLetters == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "dead letters are not available"})
		return
	}
	list, err := s.opts.DeadLetters.ListDeadLetters(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// redriveAnswer is the answer of POST /api/v1/dlq/replay: the job to follow at
// /api/v1/replay/{id}, and what it redrives (read back with GET /api/v1/dlq?ids=...&all=true
// once it ends, to see which were delivered).
type redriveAnswer struct {
	ID  string   `json:"id,omitempty"`
	IDs []uint64 `json:"ids"`
}

func (s *Server) redriveDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.opts.DeadLetters == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "dead letters are not available"})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	id, ids, err := s.opts.DeadLetters.RedriveDeadLetters(r.Context(), body)
	if err != nil {
		writeError(w, err)
		return
	}
	if ids == nil {
		ids = []uint64{}
	}
	if id == "" {
		// Nothing selected: no job was started, so nothing was accepted for later.
		writeJSON(w, http.StatusOK, redriveAnswer{IDs: ids})
		return
	}
	writeJSON(w, http.StatusAccepted, redriveAnswer{ID: id, IDs: ids})
}

func (s *Server) replayStatus(w http.ResponseWriter, r *http.Request) {
	if s.opts.Replayer == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such replay"})
		return
	}
	st, ok := s.opts.Replayer.ReplayStatus(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such replay"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) stopReplay(w http.ResponseWriter, r *http.Request) {
	if s.opts.Replayer == nil || !s.opts.Replayer.StopReplay(r.PathValue("id")) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such replay"})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "stopping"})
}

// writeError answers 400 for an ErrBadRequest, else 500.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
