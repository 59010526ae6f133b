package otlpbody

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"testing"
)

func TestReader(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte("spans"))
	_ = zw.Close()

	for _, tc := range []struct {
		name, encoding string
		body           []byte
		want           string
		wantErr        bool
	}{
		{name: "plain", body: []byte("spans"), want: "spans"},
		{name: "gzip", encoding: "gzip", body: zipped.Bytes(), want: "spans"},
		{name: "claims gzip, is not", encoding: "gzip", body: []byte("spans"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/traces", bytes.NewReader(tc.body))
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			body, err := Reader(req)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error for a body that is not gzip")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			if err != nil || string(got) != tc.want {
				t.Fatalf("read %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
