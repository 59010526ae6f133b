package admin

import (
	"context"
	"io"
	"net/http"
)

// Reloader loads the router's configuration again (POST /api/v1/reload) and describes the
// configuration in force (GET /api/v1/config).
type Reloader interface {
	// Reload answers a reload request body ({"dry_run": bool, "history": "24h"}) with the HTTP
	// status (200 applied or would apply, 422 refused, 400 a bad request) and the answer.
	Reload(ctx context.Context, body []byte) (status int, answer any)
	// ConfigInfo is the generation in force and the last reloads.
	ConfigInfo() any
}

func (s *Server) reloadRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/reload", s.authorized(http.HandlerFunc(s.reload)))
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, _ *http.Request) {
		if s.opts.Reloader == nil {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "reload is not available"})
			return
		}
		writeJSON(w, http.StatusOK, s.opts.Reloader.ConfigInfo())
	})
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reloader == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "reload is not available"})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	code, answer := s.opts.Reloader.Reload(r.Context(), body)
	writeJSON(w, code, answer)
}
