// Package otlpbody reads the body of an OTLP/HTTP export request as the test collectors and the
// benchmark's sink receive it: gzip-compressed when the exporter says so, as is otherwise.
package otlpbody

import (
	"compress/gzip"
	"io"
	"net/http"
)

// Reader returns the request's body, decompressed when its Content-Encoding is gzip. An error
// means the body claims gzip and is not: the caller answers 400.
func Reader(r *http.Request) (io.Reader, error) {
	if r.Header.Get("Content-Encoding") != "gzip" {
		return r.Body, nil
	}
	return gzip.NewReader(r.Body)
}
