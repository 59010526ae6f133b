package router

import (
	"fmt"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// Status is the engine's state for /api/v1/status and /readyz.
type Status struct {
	Ready    bool                  `json:"ready"`
	Reason   string                `json:"reason,omitempty"`
	Sources  []SourceStatus        `json:"sources"`
	Streams  []StreamStatus        `json:"streams"`
	Clusters []event.ClusterStatus `json:"clusters"`
	Store    StoreStatus           `json:"store"`
	Routes   []string              `json:"routes"`
	// RefusedDeadLetters are, per route, the dead letters its dead-letter target kept refusing
	// since the router started; they stay in the log (router dlq list, router dlq replay).
	RefusedDeadLetters []RefusedDeadLetters `json:"refused_dead_letters,omitempty"`
	// Detail says what needs an operator without making the router unready: a cluster
	// connection down or blocked, delivery streams sharing channels, refused dead letters.
	Detail []string `json:"detail,omitempty"`
	// Generation is the configuration's: 1 at start, +1 per applied reload.
	Generation int64     `json:"generation"`
	Time       time.Time `json:"time"`
	// Router names this router among those sharing the log (a stream log only).
	Router string `json:"router,omitempty"`
}

// RefusedDeadLetters counts one route's dead letters that its target refused
// deadLetterAttempts times in a row.
type RefusedDeadLetters struct {
	Route     string    `json:"route"`
	Count     uint64    `json:"count"`
	LastSeq   uint64    `json:"last_seq"`   // the event of the latest one
	LastError string    `json:"last_error"` // why the target refused it
	Last      time.Time `json:"last"`
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
	// With a log several routers share: the router delivering the pair ("" while none is
	// known) and whether it is this one. Where another router delivers the pair, Reported
	// says that Position is the one that router last reported (streamlog: within 200 ms
	// while it moves) and Lag is measured against this router's LastSeq; without Reported
	// or HeldHere they are this router's own, stale view.
	Holder   string `json:"holder,omitempty"`
	HeldHere bool   `json:"held_here,omitempty"`
	Reported bool   `json:"reported,omitempty"`
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
	holders, shared := e.store.(PairHolders)
	if shared {
		st.Router = holders.Holder()
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
		if shared && !s.replay && !s.dryRun {
			ss.Holder, ss.HeldHere = holders.PairHolder(s.cursor)
			// Another router delivers the pair: its position, not this router's stale one.
			if p, ok := holders.PairPosition(s.cursor); ok && !ss.HeldHere {
				ss.Position, ss.Lag, ss.Reported = p, 0, true
				if last > p {
					ss.Lag = last - p
				}
			}
		}
		st.Streams = append(st.Streams, ss)
	}
	if e.clusters != nil {
		st.Clusters = e.clusters()
	}
	st.RefusedDeadLetters = e.refused.snapshot()
	st.Detail = detail(st)
	return st
}

// detail lists what Status.Detail says, from the rest of st.
func detail(st Status) []string {
	var out []string
	for _, c := range st.Clusters {
		for _, conn := range c.Connections {
			switch {
			case !conn.Connected:
				out = append(out, fmt.Sprintf("cluster %s: %s connection down: %s", c.Name, conn.Role, conn.LastError))
			case conn.Blocked != "":
				out = append(out, fmt.Sprintf("cluster %s: the broker blocks the %s connection: %s", c.Name, conn.Role, conn.Blocked))
			}
			if conn.SharedChannels > 0 {
				out = append(out, fmt.Sprintf("cluster %s: %d delivery streams share %d channels of the %s connection (channel_max %d)",
					c.Name, conn.Publishers, conn.Channels, conn.Role, conn.ChannelMax))
			}
		}
	}
	for _, r := range st.RefusedDeadLetters {
		out = append(out, fmt.Sprintf("route %s: %d dead letters refused by the dead-letter target, kept in the log (last: seq %d, %s)",
			r.Route, r.Count, r.LastSeq, r.LastError))
	}
	return out
}

// StatusJSON adapts Status for the admin API: /readyz answers with the readiness, its reason
// and the detail, /api/v1/status with the whole status.
func (e *Engine) StatusJSON() (ready bool, reason string, detail []string, status any) {
	st := e.Status()
	return st.Ready, st.Reason, st.Detail, st
}
