package router

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/wasmrouter/wasmrouter/event"
)

// DryRunReport says what a replay would deliver, and, against a candidate configuration, where
// the candidate's decisions differ from the current ones.
type DryRunReport struct {
	Events      uint64            `json:"events"`       // selected events looked at
	WouldReplay uint64            `json:"would_replay"` // events at least one target would receive
	PerTarget   map[string]uint64 `json:"per_target"`   // "route -> target": events
	Diff        *DiffReport       `json:"diff,omitempty"`
}

// DiffReport counts (event, route) decisions that change under a candidate configuration.
type DiffReport struct {
	NewlyRouted     uint64        `json:"newly_routed"`
	NoLongerRouted  uint64        `json:"no_longer_routed"`
	RoutedElsewhere uint64        `json:"routed_elsewhere"`
	OutputChanged   uint64        `json:"output_changed"`
	Unchanged       uint64        `json:"unchanged"`
	Examples        []DiffExample `json:"examples,omitempty"`
}

// DiffExample is one changed decision, for the report.
type DiffExample struct {
	Kind       string   `json:"kind"`
	Seq        uint64   `json:"seq"`
	MessageID  string   `json:"message_id"`
	Route      string   `json:"route"`
	RoutingKey string   `json:"routing_key"`
	Before     []string `json:"before"`
	After      []string `json:"after"`
	Detail     string   `json:"detail,omitempty"`
}

// examplesPerKind bounds the examples a report carries.
const examplesPerKind = 3

// CountSelected counts the events a selection covers, and the (event, route) pairs among
// them, for progress totals.
func CountSelected(st Log, t *Topology, sel *Selection) (events, pairs uint64, err error) {
	if sel.To == 0 {
		return 0, 0, nil // an empty log
	}
	// Only the records' heads are read: counting must not cost a decoding pass over the log
	// before the replay's own.
	err = st.ScanHeads(sel.From, sel.To, func(h event.RecordHead) error {
		if !sel.inTime(h.IngestTime) {
			return nil
		}
		matched := uint64(0)
		for _, r := range sel.Routes {
			if r.Matches(string(h.Source), string(h.RoutingKey)) {
				matched++
			}
		}
		if matched > 0 {
			events++
			pairs += matched
		}
		return nil
	})
	return events, pairs, err
}

// scanSelected calls fn for each event in the selection's range and time that one of routes
// matches. Events are handed out after each read transaction ends.
func scanSelected(ctx context.Context, st Log, sel *Selection, routes []*Route, fn func(*event.Event)) error {
	keep := func(source, key string) bool {
		for _, r := range routes {
			if r.Matches(source, key) {
				return true
			}
		}
		return false
	}
	batch := make([]*event.Event, 0, 1024)
	for next := sel.From; next <= sel.To && sel.To > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch = batch[:0]
		limit := 1024
		if rest := sel.To - next + 1; rest < uint64(limit) {
			limit = int(rest)
		}
		n, err := st.Scan(next, limit, event.ByHead(keep), func(ev *event.Event) bool {
			batch = append(batch, ev)
			return true
		})
		if err != nil {
			return err
		}
		for _, ev := range batch {
			if sel.InTime(ev) {
				fn(ev)
			}
		}
		if n <= next {
			break // nothing more in the log
		}
		next = n
	}
	return nil
}

// DryRun runs the selected events through the current routes without publishing, and through
// candidate too when it is not nil. progress, when set, is called with the events done.
func DryRun(ctx context.Context, st Log, current *Topology, sel *Selection, candidate *Topology, progress func(done uint64)) (DryRunReport, error) {
	rep := DryRunReport{PerTarget: map[string]uint64{}}
	if candidate != nil {
		rep.Diff = &DiffReport{}
	}
	scanned, names := dryRunScope(current, sel, candidate)
	err := scanSelected(ctx, st, sel, scanned, func(ev *event.Event) {
		rep.Events++
		before := filterOutcomes(current.Decide(ctx, ev), names, sel.Target)
		delivered := false
		for _, o := range before {
			for _, tn := range o.Targets {
				rep.PerTarget[o.Route+" -> "+tn]++
				delivered = true
			}
		}
		if delivered {
			rep.WouldReplay++
		}
		if candidate != nil {
			after := filterOutcomes(candidate.Decide(ctx, ev), names, sel.Target)
			rep.Diff.add(ev, before, after)
		}
		if progress != nil {
			progress(rep.Events)
		}
	})
	return rep, err
}

// dryRunScope returns the routes whose events a dry run looks at, and the names of the routes
// it reports on. The candidate's routes of the selected names (all of them, new routes
// included, when the selection is every route) count too: events that only the candidate
// matches are the newly routed ones.
func dryRunScope(current *Topology, sel *Selection, candidate *Topology) ([]*Route, map[string]bool) {
	names := make(map[string]bool, len(sel.Routes))
	for _, r := range sel.Routes {
		names[r.Spec.Name] = true
	}
	if candidate == nil {
		return sel.Routes, names
	}
	all := len(sel.Routes) == len(current.Routes)
	scanned := slices.Clone(sel.Routes)
	for _, r := range candidate.Routes {
		if all || names[r.Spec.Name] {
			scanned = append(scanned, r)
			names[r.Spec.Name] = true
		}
	}
	return scanned, names
}

// CountDryRun counts the events a dry run against candidate (which may be nil) looks at, for
// progress totals.
func CountDryRun(st Log, current *Topology, sel *Selection, candidate *Topology) (uint64, error) {
	scanned, _ := dryRunScope(current, sel, candidate)
	var n uint64
	err := scanSelected(context.Background(), st, sel, scanned, func(*event.Event) { n++ })
	return n, err
}

// filterOutcomes keeps the selected routes, and only the selected target's outputs.
func filterOutcomes(outs []RouteOutcome, routes map[string]bool, target string) map[string]RouteOutcome {
	m := make(map[string]RouteOutcome, len(outs))
	for _, o := range outs {
		if !routes[o.Route] {
			continue
		}
		if target != "" {
			o.Targets = slices.DeleteFunc(slices.Clone(o.Targets), func(t string) bool { return t != target })
			o.Outputs = slices.DeleteFunc(slices.Clone(o.Outputs), func(out Output) bool { return out.Target != target })
		}
		m[o.Route] = o
	}
	return m
}

func (d *DiffReport) add(ev *event.Event, before, after map[string]RouteOutcome) {
	seen := map[string]bool{}
	for name := range before {
		seen[name] = true
	}
	for name := range after {
		seen[name] = true
	}
	for name := range seen {
		b, a := before[name].Targets, after[name].Targets
		var kind, detail string
		switch {
		case len(b) == 0 && len(a) == 0:
			d.Unchanged++
			continue
		case len(b) == 0:
			kind = "newly_routed"
			d.NewlyRouted++
		case len(a) == 0:
			kind = "no_longer_routed"
			d.NoLongerRouted++
			if o := after[name]; o.Verdict != "" && o.Verdict != "deliver" {
				detail = o.Verdict + " by module " + o.Module
			}
		case !slices.Equal(b, a):
			kind = "routed_elsewhere"
			d.RoutedElsewhere++
		case !sameOutputs(before[name].Outputs, after[name].Outputs):
			kind = "output_changed"
			d.OutputChanged++
			detail = outputChange(before[name].Outputs, after[name].Outputs)
		default:
			d.Unchanged++
			continue
		}
		if d.countExamples(kind) < examplesPerKind {
			d.Examples = append(d.Examples, DiffExample{
				Kind: kind, Seq: ev.Seq, MessageID: ev.Props.MessageID, Route: name,
				RoutingKey: ev.RoutingKey, Before: nonNil(b), After: nonNil(a), Detail: detail,
			})
		}
	}
}

func (d *DiffReport) countExamples(kind string) int {
	n := 0
	for _, e := range d.Examples {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func sameOutputs(a, b []Output) bool { return reflect.DeepEqual(a, b) }

func outputChange(a, b []Output) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d messages before, %d after", len(a), len(b))
	}
	for i := range a {
		switch {
		case a[i].RoutingKey != b[i].RoutingKey:
			return fmt.Sprintf("routing key %q -> %q", a[i].RoutingKey, b[i].RoutingKey)
		case a[i].Body != b[i].Body:
			return "body changed"
		case !reflect.DeepEqual(a[i].Headers, b[i].Headers):
			return "headers changed"
		}
	}
	return ""
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
