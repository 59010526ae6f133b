// Package adminapi reads a running router's admin API for tests: the status document, in the
// part the tests look at.
package adminapi

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

var client = &http.Client{Timeout: 5 * time.Second}

// Get fetches http://addr/path and returns the status code and body.
func Get(addr, path string) (int, []byte, error) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Status is the part of /api/v1/status the tests read.
type Status struct {
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason"`
	Sources []struct {
		Name      string `json:"name"`
		Cluster   string `json:"cluster"`
		Consuming bool   `json:"consuming"`
	} `json:"sources"`
	Streams []struct {
		Route    string `json:"route"`
		Target   string `json:"target"`
		Cluster  string `json:"cluster"`
		Position uint64 `json:"position"`
		Lag      uint64 `json:"lag"`
	} `json:"streams"`
	Clusters []ClusterStatus `json:"clusters"`
	Store    struct {
		SizeBytes int64  `json:"size_bytes"`
		FirstSeq  uint64 `json:"first_seq"`
		LastSeq   uint64 `json:"last_seq"`
	} `json:"store"`
}

// ClusterStatus is one cluster's connection state.
type ClusterStatus struct {
	Name       string `json:"name"`
	Connected  bool   `json:"connected"`
	LastError  string `json:"last_error"`
	Reconnects uint64 `json:"reconnects"`
}

// GetStatus fetches and decodes /api/v1/status, failing the test if it cannot.
func GetStatus(t testing.TB, addr string) Status {
	t.Helper()
	code, body, err := Get(addr, "/api/v1/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/status: %d %v %s", code, err, body)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/api/v1/status is not the JSON expected: %v\n%s", err, body)
	}
	return st
}

// Settled reports whether the log holds at least minEvents events and every stream's position
// is its last seq: everything logged is delivered (or dead-lettered), so the targets hold all
// they will get.
func (st Status) Settled(minEvents uint64) bool {
	if st.Store.LastSeq < minEvents {
		return false
	}
	for _, s := range st.Streams {
		if s.Position != st.Store.LastSeq {
			return false
		}
	}
	return true
}
