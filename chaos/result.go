package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Result is one scenario's outcome. Lost must be 0 and Violations empty for it to pass.
type Result struct {
	Scenario           string         `json:"scenario"`
	About              string         `json:"about"`
	Skipped            string         `json:"skipped,omitempty"`
	Error              string         `json:"error,omitempty"`
	Traffic            Duration       `json:"traffic"`
	Drain              Duration       `json:"drain"`
	Rate               int            `json:"rate"`
	Faults             int            `json:"faults"`
	FaultKind          string         `json:"fault_kind"`
	Published          int            `json:"published"`
	Confirmed          int            `json:"confirmed"`
	UnconfirmedArrived int            `json:"unconfirmed_arrived"`
	Delivered          int            `json:"delivered"`
	Duplicates         int            `json:"duplicates"`
	DeadLettered       int            `json:"dead_lettered"`
	DeadLetterReasons  map[string]int `json:"dead_letter_reasons"`
	Lost               int            `json:"lost"`
	LostSample         []string       `json:"lost_sample,omitempty"`
	Misplaced          int            `json:"misplaced"`
	MisplacedSample    []string       `json:"misplaced_sample,omitempty"`
	Mismatches         int            `json:"header_mismatches"`
	MismatchSample     []string       `json:"mismatch_sample,omitempty"`
	Sinks              []SinkResult   `json:"sinks"`
	Notes              []string       `json:"notes,omitempty"`
	Violations         []string       `json:"violations,omitempty"`
}

// SinkResult is one target's share: confirmed ids delivered there, dead-lettered from its
// route, or lost; latency from publish to the checker's receipt.
type SinkResult struct {
	Name         string `json:"name"`
	Delivered    int    `json:"delivered"`
	DeadLettered int    `json:"dead_lettered"`
	Lost         int    `json:"lost"`
	Duplicates   int    `json:"duplicates"`
	// DeliveredAndDead counts ids both delivered and dead-lettered (counted as delivered).
	DeliveredAndDead int      `json:"delivered_and_dead_lettered"`
	LatencyP50       Duration `json:"latency_p50"`
	LatencyP99       Duration `json:"latency_p99"`
	LatencyMax       Duration `json:"latency_max"`
}

// Duration is a time.Duration that prints rounded to the millisecond, also in JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).Round(time.Millisecond).String() }

// MarshalJSON writes the duration as a string such as "1.25s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Passed reports whether the scenario lost nothing and broke no rule.
func (r *Result) Passed() bool {
	return r.Skipped != "" || (r.Error == "" && r.Lost == 0 && r.Misplaced == 0 && r.Mismatches == 0 && len(r.Violations) == 0)
}

func (r *Result) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// writeText prints a result for people.
func (r *Result) writeText(out io.Writer) {
	fmt.Fprintf(out, "== %s: %s\n", r.Scenario, r.About)
	if r.Skipped != "" {
		fmt.Fprintf(out, "   SKIPPED: %s\n", r.Skipped)
		return
	}
	fmt.Fprintf(out, "   traffic %v at %d msg/s, drain %v, faults: %d %s\n",
		r.Traffic, r.Rate, r.Drain, r.Faults, r.FaultKind)
	fmt.Fprintf(out, "   published %d  confirmed %d  delivered %d  duplicates %d  dead-lettered %d  lost %d  (unconfirmed that arrived: %d)\n",
		r.Published, r.Confirmed, r.Delivered, r.Duplicates, r.DeadLettered, r.Lost, r.UnconfirmedArrived)
	for _, s := range r.Sinks {
		fmt.Fprintf(out, "   target %-6s delivered %d  dead-lettered %d  lost %d  duplicates %d  latency p50 %v p99 %v max %v\n",
			s.Name, s.Delivered, s.DeadLettered, s.Lost, s.Duplicates,
			s.LatencyP50, s.LatencyP99, s.LatencyMax)
		if s.DeliveredAndDead > 0 {
			fmt.Fprintf(out, "   target %-6s %d delivered and also dead-lettered\n", s.Name, s.DeliveredAndDead)
		}
	}
	reasons := make([]string, 0, len(r.DeadLetterReasons))
	for k := range r.DeadLetterReasons {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(out, "   dead-letter reason x%d: %s\n", r.DeadLetterReasons[k], k)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "   note: %s\n", n)
	}
	if len(r.LostSample) > 0 {
		fmt.Fprintf(out, "   lost, e.g.: %s\n", strings.Join(r.LostSample, ", "))
	}
	if r.Misplaced > 0 {
		fmt.Fprintf(out, "   misplaced %d, e.g.: %s\n", r.Misplaced, strings.Join(r.MisplacedSample, "; "))
	}
	if r.Mismatches > 0 {
		fmt.Fprintf(out, "   header mismatches %d, e.g.: %s\n", r.Mismatches, strings.Join(r.MismatchSample, "; "))
	}
	for _, v := range r.Violations {
		fmt.Fprintf(out, "   VIOLATION: %s\n", v)
	}
	if r.Error != "" {
		fmt.Fprintf(out, "   ERROR: %s\n", r.Error)
	}
	if r.Passed() {
		fmt.Fprintln(out, "   PASS")
	} else {
		fmt.Fprintln(out, "   FAIL")
	}
}

// report is the -json output.
type report struct {
	Started time.Time `json:"started"`
	Machine string    `json:"machine"`
	Seed    int64     `json:"seed"`
	Short   bool      `json:"short"`
	Passed  bool      `json:"passed"`
	Results []*Result `json:"results"`
}

func writeJSON(out io.Writer, rep report) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
