package logquery

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// LogStats is what `router log stats` prints and GET /api/v1/log/stats answers.
type LogStats struct {
	Count     uint64            `json:"count"`
	SizeBytes int64             `json:"size_bytes"`
	FirstSeq  uint64            `json:"first_seq"`
	LastSeq   uint64            `json:"last_seq"`
	Oldest    string            `json:"oldest,omitempty"`
	Newest    string            `json:"newest,omitempty"`
	PerSource map[string]uint64 `json:"per_source"`
	// Streams are the delivery positions, one per (route, target) and per cluster for targets
	// in "all" mode. Lag counts the logged events after the position (not only the matching ones).
	Streams []StreamPosition `json:"streams"`
	// UnfinishedReplays are the ids of replay jobs that did not reach their end, for
	// `router replay --resume ID`.
	UnfinishedReplays []string `json:"unfinished_replays"`
	// DeadLetters counts every dead letter; DeadLettersPending those not redriven.
	DeadLetters        uint64 `json:"dead_letters"`
	DeadLettersPending uint64 `json:"dead_letters_pending"`
}

type StreamPosition struct {
	Route    string `json:"route"`
	Target   string `json:"target"`
	Cluster  string `json:"cluster,omitempty"`
	Position uint64 `json:"position"`
	Lag      uint64 `json:"lag"`
	// Configured is false for a position the configuration no longer has a stream for.
	Configured bool `json:"configured"`
}

// bboltStats is the bbolt log's own account of itself: its range, size and per-source counts
// in one read, and every cursor it keeps.
type bboltStats interface {
	Stats(withPerSource bool) (store.Stats, error)
	Cursors() (map[string]uint64, error)
}

// Stats reads the log's statistics; cfg names the configured delivery streams.
func Stats(cfg *config.Config, st StatsReader) (LogStats, error) {
	if err := WaitReadable(context.Background(), st); err != nil {
		return LogStats{}, err
	}
	var (
		raw     store.Stats
		cursors map[string]uint64
		err     error
	)
	if b, ok := st.(bboltStats); ok {
		if raw, err = b.Stats(true); err != nil {
			return LogStats{}, err
		}
		if cursors, err = b.Cursors(); err != nil {
			return LogStats{}, err
		}
	} else if raw, cursors, err = statsOfLog(cfg, st); err != nil {
		return LogStats{}, err
	}
	s := LogStats{
		Count: raw.Events, SizeBytes: raw.FileSize, FirstSeq: raw.FirstSeq, LastSeq: raw.LastSeq,
		PerSource: raw.PerSource, Streams: []StreamPosition{},
	}
	if !raw.Oldest.IsZero() {
		s.Oldest, s.Newest = raw.Oldest.Format(time.RFC3339Nano), raw.Newest.Format(time.RFC3339Nano)
	}
	if s.UnfinishedReplays, err = st.Jobs(); err != nil {
		return s, err
	}
	if s.UnfinishedReplays == nil {
		s.UnfinishedReplays = []string{}
	}
	known := configuredCursors(cfg)
	for name, pos := range cursors {
		sp, ok := known[name]
		if !ok {
			if sp, ok = parseCursor(name); !ok {
				continue // not a delivery position (dead-letter streams, replay jobs)
			}
		}
		sp.Position = pos
		if raw.LastSeq > pos {
			sp.Lag = raw.LastSeq - pos
		}
		s.Streams = append(s.Streams, sp)
	}
	sort.Slice(s.Streams, func(i, j int) bool {
		a, b := s.Streams[i], s.Streams[j]
		if a.Route != b.Route {
			return a.Route < b.Route
		}
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		return a.Cluster < b.Cluster
	})
	err = st.DeadLetters(1, 0, func(dl store.DeadLetter) bool {
		s.DeadLetters++
		if !dl.Redriven {
			s.DeadLettersPending++
		}
		return true
	})
	return s, err
}

// configuredCursors names the delivery cursor of every (route, target) of the configuration,
// which tells route and target apart even when a name holds a "/".
func configuredCursors(cfg *config.Config) map[string]StreamPosition {
	targets := map[string]config.TargetSpec{}
	for _, t := range cfg.Targets {
		targets[t.Name] = t
	}
	out := map[string]StreamPosition{}
	for _, r := range cfg.Routes {
		names := r.Targets
		if r.Handler != "" { // a handler may emit to any target
			names = nil
			for _, t := range cfg.Targets {
				names = append(names, t.Name)
			}
		}
		for _, tn := range names {
			t := targets[tn]
			if t.Mode == config.ModeAll {
				for _, cn := range t.Clusters {
					out[router.CursorName(r.Name, tn, cn)] = StreamPosition{Route: r.Name, Target: tn, Cluster: cn, Configured: true}
				}
				continue
			}
			out[router.CursorName(r.Name, tn, "")] = StreamPosition{Route: r.Name, Target: tn, Configured: true}
		}
	}
	return out
}

// parseCursor reads "deliver/ROUTE/TARGET" or "deliver/ROUTE/TARGET@CLUSTER" for a stream the
// configuration no longer has.
func parseCursor(name string) (StreamPosition, bool) {
	rest, ok := strings.CutPrefix(name, "deliver/")
	if !ok {
		return StreamPosition{}, false
	}
	route, target, ok := strings.Cut(rest, "/")
	if !ok {
		return StreamPosition{}, false
	}
	sp := StreamPosition{Route: route, Target: target}
	if i := strings.LastIndexByte(target, '@'); i >= 0 {
		sp.Target, sp.Cluster = target[:i], target[i+1:]
	}
	return sp, true
}

// statsOfLog counts through the record heads, for a log that keeps no statistics of its own
// (the stream log: its whole range, every router's events), and reads the configured
// delivery positions through the port.
func statsOfLog(cfg *config.Config, st StatsReader) (store.Stats, map[string]uint64, error) {
	raw := store.Stats{FirstSeq: st.FirstSeq(), LastSeq: st.LastSeq(), FileSize: st.Size(), PerSource: map[string]uint64{}}
	if raw.FirstSeq > 0 && raw.LastSeq >= raw.FirstSeq {
		err := st.ScanHeads(raw.FirstSeq, raw.LastSeq, func(h event.RecordHead) error {
			raw.Events++
			raw.PerSource[string(h.Source)]++
			if !h.IngestTime.IsZero() {
				if raw.Oldest.IsZero() {
					raw.Oldest = h.IngestTime
				}
				raw.Newest = h.IngestTime
			}
			return nil
		})
		if err != nil {
			return raw, nil, err
		}
	}
	if raw.Events == 0 {
		raw.FirstSeq = 0
	}
	cursors := map[string]uint64{}
	for name := range configuredCursors(cfg) {
		pos, err := st.Cursor(name)
		if err != nil {
			return raw, nil, err
		}
		if pos > 0 {
			cursors[name] = pos
		}
	}
	return raw, cursors, nil
}
