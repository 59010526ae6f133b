package router

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
)

// Status is the engine's state for /api/v1/status and /readyz.
type Status struct {
	Ready    bool           `json:"ready"`
	Reason   string         `json:"reason,omitempty"`
	Sources  []SourceStatus `json:"sources"`
	Streams  []StreamStatus `json:"streams"`
	Clusters []amqpx.Status `json:"clusters"`
	Store    StoreStatus    `json:"store"`
	Routes   []string       `json:"routes"`
	// Generation is the configuration's: 1 at start, +1 per applied reload.
	Generation int64     `json:"generation"`
	Time       time.Time `json:"time"`
}

// SourceStatus is one consumed queue.
type SourceStatus struct {
	Name      string `json:"name"`
	Cluster   string `json:"cluster"`
	Queue     string `json:"queue"`
	Consuming bool   `json:"consuming"`
}

// StreamStatus is one (route, target) delivery position.
type StreamStatus struct {
	Route    string `json:"route"`
	Target   string `json:"target"`
	Cluster  string `json:"cluster"`
	Position uint64 `json:"position"`
	Lag      uint64 `json:"lag"`
	// StartedAfter is set for a pair that had no cursor when it started: it delivers the
	// events after this seq; the earlier ones need `router replay`.
	StartedAfter *uint64 `json:"started_after,omitempty"`
}

// StoreStatus is the log's size and range.
type StoreStatus struct {
	SizeBytes int64  `json:"size_bytes"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Full      bool   `json:"full"`
	Error     string `json:"error,omitempty"` // why commits fail, while they do
}

// Status reports sources, streams, clusters and the store. Readiness needs every source
// consuming and a log with room: a target cluster that is down is lag, not unreadiness.
func (e *Engine) Status() Status {
	st := Status{Ready: true, Time: time.Now().UTC(), Generation: e.generation.Load()}
	last := e.store.LastSeq()
	st.Store = StoreStatus{SizeBytes: e.store.Size(), FirstSeq: e.store.FirstSeq(), LastSeq: last, Full: e.store.Full()}
	for _, r := range e.topo.Load().Routes {
		st.Routes = append(st.Routes, r.Spec.Name)
	}
	e.mu.Lock()
	sources, streams := e.sources, e.streams
	e.mu.Unlock()
	for _, s := range sources {
		ok := s.consuming.Load()
		st.Sources = append(st.Sources, SourceStatus{Name: s.spec.Name, Cluster: s.spec.Cluster, Queue: s.spec.Queue, Consuming: ok})
		if !ok && st.Ready {
			st.Ready, st.Reason = false, "source "+s.spec.Name+" is not consuming"
		}
	}
	if len(sources) == 0 && len(e.topo.Load().Config.Sources) > 0 {
		st.Ready, st.Reason = false, "starting"
	}
	if st.Store.Full && st.Ready {
		st.Ready, st.Reason = false, "event log is full: consumption held back"
	}
	if err := e.store.CommitError(); err != nil {
		st.Store.Error = err.Error()
		if st.Ready {
			st.Ready, st.Reason = false, "event log cannot be written: "+err.Error()
		}
	}
	for _, s := range streams {
		pos, _ := e.store.Cursor(s.cursor)
		var lag uint64
		if last > pos {
			lag = last - pos
		}
		ss := StreamStatus{Route: s.route, Target: s.target, Cluster: s.pub.Cluster(), Position: pos, Lag: lag}
		if s.newPair.Load() {
			after := s.startedAt.Load()
			ss.StartedAfter = &after
		}
		st.Streams = append(st.Streams, ss)
	}
	for _, c := range e.topo.Load().Config.Clusters {
		if conn := e.cluster(c.Name); conn != nil {
			st.Clusters = append(st.Clusters, conn.Status())
		}
	}
	return st
}

// declareExchanges declares target exchanges on a fresh connection.
func declareExchanges(conn *amqp.Connection, exchanges []string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, x := range exchanges {
		if err := amqpx.DeclareExchange(ch, x); err != nil {
			return err
		}
	}
	return nil
}

// StatusJSON adapts Status for the admin API.
func (e *Engine) StatusJSON() (bool, string, any) {
	st := e.Status()
	return st.Ready, st.Reason, st
}
