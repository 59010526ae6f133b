// Package console is the router's web console: plain HTML, CSS and JavaScript embedded in the
// binary, served by the admin API at its view addresses (/, /events, /events/{seq}, /dlq,
// /replays, /modules, /config). The page reads the admin API from the browser; it needs no
// network access beyond the router and no build step. docs/console.md describes it.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Handler serves the page at every view address and the assets under /assets/.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A new binary may bring new assets: browsers check again each time.
		w.Header().Set("Cache-Control", "no-cache")
		if r.URL.Path == "/favicon.ico" {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/favicon.svg"
			files.ServeHTTP(w, r2)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/assets/"); ok {
			if rest == "" || rest == "index.html" {
				http.NotFound(w, r)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + rest
			files.ServeHTTP(w, r2)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(index)
	})
}
