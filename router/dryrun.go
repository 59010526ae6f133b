package router

import (
	"context"
	"encoding/base64"
	"sort"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

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
// not wait out retries).
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
			for _, tn := range r.DeliveryTargets(t) {
				tgt := t.Targets[tn]
				for _, m := range messagesFor(r, tgt, ev, &d, false, nil) {
					o.Outputs = append(o.Outputs, Output{
						Target: tn, RoutingKey: m.key, Body: bodyText(m.msg.Body),
						Headers: HeadersJSON(event.Table(m.msg.Headers)), Emitted: m.emitted,
					})
					if !seen[tn] {
						seen[tn] = true
						o.Targets = append(o.Targets, tn)
					}
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
// base64 text, timestamps RFC 3339, decimals {"scale","value"}.
func HeadersJSON(h event.Table) map[string]any {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case event.Table:
		return HeadersJSON(x)
	case amqp.Table:
		return HeadersJSON(event.Table(x))
	case amqp.Decimal:
		return map[string]any{"scale": x.Scale, "value": x.Value}
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = jsonValue(e)
		}
		return a
	case []byte:
		return bodyText(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case event.Decimal:
		return map[string]any{"scale": x.Scale, "value": x.Value}
	default:
		return v
	}
}
