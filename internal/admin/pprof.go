package admin

import (
	"net/http"
	"net/http/pprof"
)

// registerPprof serves Go's runtime profiles under /debug/pprof/ so an operator can see where
// the router spends CPU and memory under their own load (go tool pprof
// http://ADDR/debug/pprof/profile). A profile names the code, not message contents, but a heap
// or goroutine dump is still the process's inside: with a token set every profile needs it,
// like mutating calls; without one the API is loopback only (CheckAddr).
func (s *Server) registerPprof(mux *http.ServeMux) {
	mux.Handle("GET /debug/pprof/", s.authorized(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", s.authorized(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", s.authorized(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", s.authorized(http.HandlerFunc(pprof.Trace)))
	// pprof's tools resolve symbols with GET or POST (a list of addresses in the body).
	mux.Handle("GET /debug/pprof/symbol", s.authorized(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("POST /debug/pprof/symbol", s.authorized(http.HandlerFunc(pprof.Symbol)))
}
