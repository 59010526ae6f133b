package router

import (
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// Delivery states of one event at one (route, target) stream.
const (
	DeliveryDelivered    = "delivered"     // the broker confirmed it
	DeliveryDropped      = "dropped"       // a filter of the route dropped it
	DeliveryPassed       = "passed"        // settled: delivered, unless a module of the route dropped it or sent it elsewhere
	DeliveryWaiting      = "waiting"       // the stream has not reached it yet
	DeliveryDeadLettered = "dead_lettered" // given up: see the dead letter's reason
)

// Delivery is where one logged event stands at one (route, target) stream, and per cluster
// for targets in "all" mode.
type Delivery struct {
	Route    string `json:"route"`
	Target   string `json:"target"`
	Cluster  string `json:"cluster,omitempty"`
	Position uint64 `json:"position"` // the stream's settled seq
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
}

// Deliveries tells, for every (route, target) of the current configuration that takes ev,
// whether ev went through, from the streams' positions, the route's recent decisions and the
// event's dead letters (dead). Nothing runs: a module's verdict is known only while the route
// remembers it, and the state is "passed" otherwise.
func (e *Engine) Deliveries(ev *event.Event, dead []event.DeadLetter) []Delivery {
	topo := e.topo.Load()
	out := []Delivery{}
	for _, r := range topo.MatchingRoutes(ev.Source, ev.RoutingKey, nil) {
		for _, tn := range r.DeliveryTargets(topo) {
			tgt := topo.Targets[tn]
			if tgt == nil {
				continue
			}
			clusters := []string{""}
			if tgt.Mode == config.ModeAll {
				clusters = tgt.Clusters
			}
			for _, cn := range clusters {
				pos, _ := e.store.Cursor(CursorName(r.Spec.Name, tn, cn))
				d := Delivery{Route: r.Spec.Name, Target: tn, Cluster: cn, Position: pos}
				d.State, d.Reason = deliveryState(r, tn, ev.Seq, pos, dead)
				out = append(out, d)
			}
		}
	}
	return out
}

func deliveryState(r *Route, target string, seq, pos uint64, dead []event.DeadLetter) (state, reason string) {
	for _, dl := range dead {
		if dl.Route == r.Spec.Name && (dl.Target == "" || dl.Target == target) {
			if dl.Redriven && pos >= seq {
				return DeliveryDelivered, "redriven after: " + dl.Reason
			}
			return DeliveryDeadLettered, dl.Reason
		}
	}
	if pos < seq {
		return DeliveryWaiting, ""
	}
	if len(r.filters) == 0 && r.handler == nil { // transforms pass or fail, never drop
		return DeliveryDelivered, ""
	}
	d, ok := r.decisions.peek(seq)
	switch {
	case !ok:
		return DeliveryPassed, ""
	case d.Verdict == Dropped:
		return DeliveryDropped, "module " + d.Module
	case d.Verdict == Pass && r.handler == nil:
		return DeliveryDelivered, ""
	}
	return DeliveryPassed, ""
}

// peek returns the route's remembered decision for seq, without computing one.
func (c *decisions) peek(seq uint64) (Decision, bool) {
	e := &c.table()[seq%decisionSlots]
	if !e.mu.TryLock() {
		return Decision{}, false // being decided right now
	}
	defer e.mu.Unlock()
	if e.seq != seq {
		return Decision{}, false
	}
	return e.d, e.done
}
