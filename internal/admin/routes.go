package admin

import (
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// ReplayLister lists replay jobs (GET /api/v1/replay); a Replayer may implement it.
type ReplayLister interface {
	ReplayJobs() any
}

// contentRoutes adds the content endpoints, the console's reads and the console itself.
func (s *Server) contentRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/events", s.authorized(http.HandlerFunc(s.listEvents)))
	mux.Handle("GET /api/v1/events/stream", s.authorized(http.HandlerFunc(s.streamEvents)))
	mux.Handle("GET /api/v1/events/{seq}", s.authorized(http.HandlerFunc(s.getEvent)))
	mux.HandleFunc("GET /api/v1/log/stats", s.logStats)
	mux.HandleFunc("GET /api/v1/counters", s.counters)
	mux.HandleFunc("GET /api/v1/replay", s.listReplays)
	mux.HandleFunc("GET /api/v1/topology", s.topology)
	if s.opts.Console != nil {
		for _, view := range ConsoleViews {
			mux.Handle("GET "+view, s.opts.Console)
		}
		mux.Handle("GET /assets/", s.opts.Console)
		mux.Handle("GET /favicon.ico", s.opts.Console)
	}
}

// ConsoleViews are the console's addresses (each view can be bookmarked).
var ConsoleViews = []string{"/{$}", "/events", "/events/{seq}", "/dlq", "/replays", "/modules", "/config"}

// consoleCSP allows the console's own scripts, styles and API calls, and nothing else: no
// inline script, no frames, no other origin.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// secure adds the headers that keep message contents inert in a browser to every answer.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) listReplays(w http.ResponseWriter, _ *http.Request) {
	l, ok := s.opts.Replayer.(ReplayLister)
	if !ok {
		writeJSON(w, http.StatusOK, []any{})
		return
	}
	writeJSON(w, http.StatusOK, l.ReplayJobs())
}

// Sample is one labelled value of a metric in GET /api/v1/counters. Histograms give their
// count, sum and estimated quantiles (seconds) instead of a value.
type Sample struct {
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
	Count  uint64            `json:"count,omitempty"`
	Sum    float64           `json:"sum,omitempty"`
	P50    float64           `json:"p50,omitempty"`
	P90    float64           `json:"p90,omitempty"`
	P99    float64           `json:"p99,omitempty"`
}

// Counters is the answer of GET /api/v1/counters: the router's own metrics (router_*) as JSON,
// for the console to turn into rates between two reads.
type Counters struct {
	Time    time.Time           `json:"time"`
	Metrics map[string][]Sample `json:"metrics"`
}

func (s *Server) counters(w http.ResponseWriter, _ *http.Request) {
	fams, err := s.opts.Gatherer.Gather()
	if err != nil && len(fams) == 0 {
		writeError(w, err)
		return
	}
	out := Counters{Time: time.Now().UTC(), Metrics: map[string][]Sample{}}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "router_") {
			continue
		}
		samples := make([]Sample, 0, len(f.GetMetric()))
		for _, m := range f.GetMetric() {
			sm := Sample{Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				sm.Labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				sm.Value = m.GetCounter().GetValue()
			case m.Gauge != nil:
				sm.Value = m.GetGauge().GetValue()
			case m.Histogram != nil:
				h := m.GetHistogram()
				sm.Count, sm.Sum = h.GetSampleCount(), h.GetSampleSum()
				sm.Value = float64(sm.Count)
				sm.P50, sm.P90, sm.P99 = quantile(h, 0.5), quantile(h, 0.9), quantile(h, 0.99)
			}
			samples = append(samples, sm)
		}
		out.Metrics[f.GetName()] = samples
	}
	writeJSON(w, http.StatusOK, out)
}

// quantile estimates a quantile from cumulative buckets, interpolating linearly inside the
// bucket that holds it (as Prometheus's histogram_quantile does).
func quantile(h *dto.Histogram, q float64) float64 {
	total := float64(h.GetSampleCount())
	if total == 0 {
		return 0
	}
	buckets := h.GetBucket()
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].GetUpperBound() < buckets[j].GetUpperBound() })
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		upper, count := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if count >= rank {
			if math.IsInf(upper, 1) {
				return lower
			}
			if count == below {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/(count-below)
		}
		lower, below = upper, count
	}
	return lower // beyond the last bucket: its bound is what is known
}

// TopologyReporter describes the configuration in force (GET /api/v1/topology); an Engine
// may implement it.
type TopologyReporter interface {
	TopologyJSON() any
}

func (s *Server) topology(w http.ResponseWriter, _ *http.Request) {
	t, ok := s.opts.Engine.(TopologyReporter)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "the topology is not available"})
		return
	}
	writeJSON(w, http.StatusOK, t.TopologyJSON())
}
