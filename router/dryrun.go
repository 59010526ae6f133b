package router

import (
	"context"
	"encoding/base64"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/wasmrouter/wasmrouter/event"
)

// RouteOutcome is what one route would do with an event: the decision `router test` prints and
// dry-run replays compare.
type RouteOutcome struct {
	Route   string   `json:"route"`
	Verdict string   `json:"verdict"` // deliver | drop | dead_letter
	Module  string   `json:"module,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Targets []string `json:"targets"`
	Outputs []Output `json:"outputs,omitempty"`
}

// Output is one message a target would receive.
type Output struct {
	Target     string         `json:"target"`
	RoutingKey string         `json:"routing_key"`
	Headers    map[string]any `json:"headers,omitempty"`
	Body       string         `json:"body"`
	Emitted    bool           `json:"emitted,omitempty"`
}

// Decide runs ev through every route that matches it, without publishing or logging anything.
// Guests run for real; a transient guest failure is reported as a dead letter (a dry run does
// not wait out retries). A delivering outcome lists the event's own messages by target, then
// the handler's emitted events in the order it emitted them.
func (t *Topology) Decide(ctx context.Context, ev *event.Event) []RouteOutcome {
	var outs []RouteOutcome
	for _, r := range t.MatchingRoutes(ev.Source, ev.RoutingKey, nil) {
		d := r.Process(ctx, ev)
		o := RouteOutcome{Route: r.Spec.Name, Targets: []string{}}
		switch d.Verdict {
		case Dropped:
			o.Verdict, o.Module = "drop", d.Module
		case Pass:
			o.Verdict = "deliver"
			seen := map[string]bool{}
			output := func(tn string, m outMsg) {
				o.Outputs = append(o.Outputs, Output{
					Target: tn, RoutingKey: m.msg.RoutingKey, Body: bodyText(m.msg.Body),
					Headers: HeadersJSON(m.msg.Headers), Emitted: m.emitted,
				})
				if !seen[tn] {
					seen[tn] = true
					o.Targets = append(o.Targets, tn)
				}
			}
			own := slices.Clone(r.Spec.Targets)
			sort.Strings(own)
			for _, tn := range own {
				for _, m := range messagesFor(r, t.Targets[tn], ev, &Decision{Event: d.Event}, false, nil) {
					output(tn, m)
				}
			}
			for i, em := range d.Emits {
				if tgt := t.Targets[em.Target]; tgt != nil {
					output(em.Target, emittedMessage(r, tgt, ev, &d, i, false))
				}
			}
			sort.Strings(o.Targets)
		default:
			o.Verdict, o.Module, o.Reason = "dead_letter", d.Module, d.Reason
		}
		outs = append(outs, o)
	}
	return outs
}

func bodyText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

// HeadersJSON renders AMQP headers for JSON output: numbers stay numbers, byte arrays become
// base64 text, timestamps RFC 3339, decimals {"scale","value"}. No headers render as nil.
func HeadersJSON(h event.Table) map[string]any {
	if len(h) == 0 {
		return nil
	}
	return toJSON.Table(h)
}

// toJSON walks header values into what encoding/json renders as described at HeadersJSON.
var toJSON = event.Walker{
	AsTable:   func(v any) (map[string]any, bool) { t, ok := v.(event.Table); return t, ok },
	MakeTable: func(entries map[string]any) any { return entries },
	Leaf: func(v any) any {
		switch x := v.(type) {
		case []byte:
			return bodyText(x)
		case time.Time:
			return x.UTC().Format(time.RFC3339)
		case event.Decimal:
			return map[string]any{"scale": x.Scale, "value": x.Value}
		}
		return v
	},
}
