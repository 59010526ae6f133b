package main

import (
	"encoding/json"
	"io"
)

// jsonLines writes one JSON value per line, without HTML escaping (bodies stay readable).
type jsonLines struct{ enc *json.Encoder }

func newJSONLines(w io.Writer) jsonLines {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return jsonLines{enc: enc}
}

func (j jsonLines) write(v any) error { return j.enc.Encode(v) }
