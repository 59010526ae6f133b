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

// client bounds a request generously: a race-built router process on a loaded machine was seen
// to take over 5s to answer /api/v1/status.
var client = &http.Client{Timeout: 30 * time.Second}

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
		Holder   string `json:"holder"`
		HeldHere bool   `json:"held_here"`
	} `json:"streams"`
	Clusters []ClusterStatus `json:"clusters"`
	Router   string          `json:"router"` // with a stream log: this router's name
	Store    struct {
		SizeBytes int64  `json:"size_bytes"`
		FirstSeq  uint64 `json:"first_seq"`
		LastSeq   uint64 `json:"last_seq"`
	} `json:"store"`
}

// ClusterStatus is one cluster's connection state.
type ClusterStatus struct {
	Name        string `json:"name"`
	Connected   bool   `json:"connected"`
	LastError   string `json:"last_error"`
	Reconnects  uint64 `json:"reconnects"`
	Connections []struct {
		Role           string `json:"role"`
		Connected      bool   `json:"connected"`
		Blocked        string `json:"blocked"`
		ChannelMax     int    `json:"channel_max"`
		Channels       int    `json:"channels"`
		Publishers     int    `json:"publishers"`
		SharedChannels int    `json:"shared_channels"`
	} `json:"connections"`
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
