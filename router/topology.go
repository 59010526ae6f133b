package router

import (
	"fmt"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/filters"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// Topology is the compiled configuration: routes with their matchers and modules, and targets.
// The engine reads it through one atomic pointer per batch of events, so that a whole new
// configuration can be swapped in at runtime without stopping.
type Topology struct {
	Config  *config.Config
	Routes  []*Route
	Targets map[string]*config.TargetSpec
	Modules map[string]*wasmhost.Module

	bySource map[string]*sourceRoutes
	users    inUse // batches and dry runs working with this topology
}

// sourceRoutes are the routes fed by one source, with one matcher over all their patterns.
type sourceRoutes struct {
	routes  []*Route
	matcher *filters.Matcher // ids are indexes into routes
}

// Route is one compiled route block.
type Route struct {
	Spec       config.RouteSpec
	matcher    *filters.Matcher
	filters    []*wasmhost.Module
	transforms []*wasmhost.Module
	handler    *wasmhost.Module
	targetSet  map[string]bool // the route's own targets
	known      func(string) bool
	decisions  *decisions // shared by the route's live streams (and kept by a reload that leaves the route as it was)
	// generation is the number of the configuration the route belongs to, once the engine put
	// it in force (0 before: offline runs), for trace spans and carried matches.
	generation uint64
	index      int // the route's position in its topology: its bit in an event.RouteMatch
	// The route's name and source as header values, boxed once rather than per message.
	nameValue, sourceValue any
}

// setGeneration numbers the routes of a topology about to be put in force.
func (t *Topology) setGeneration(n int64) {
	for _, r := range t.Routes {
		r.generation = uint64(n)
	}
}

// Name is the route's name.
func (r *Route) Name() string { return r.Spec.Name }

// Matches reports whether the route takes an event from source with routing key.
func (r *Route) Matches(source, routingKey string) bool {
	return source == r.Spec.Source && r.matcher.Matches(routingKey)
}

// keeps is the stream's selection of the events of the log: the match the event carries from
// its ingest when that was made under this route's generation, else the route's own match.
// Across a reload the routes in force decide (an event logged under generation N and read
// under N+1 goes where N+1's routes send it), exactly as if nothing had been carried.
func (r *Route) keeps(source, routingKey string, m event.RouteMatch) bool {
	if takes, known := m.Has(r.generation, r.index); known {
		return takes
	}
	return r.Matches(source, routingKey)
}

// HasTarget reports whether target is one of the route's own targets.
func (r *Route) HasTarget(target string) bool { return r.targetSet[target] }

// DeliveryTargets are the targets a route may publish to: its own, and with a handler every
// declared target (a handler may emit to any of them).
func (r *Route) DeliveryTargets(t *Topology) []string {
	if r.handler == nil {
		return r.Spec.Targets
	}
	names := make([]string, 0, len(t.Config.Targets))
	for _, ts := range t.Config.Targets {
		names = append(names, ts.Name)
	}
	return names
}

// NewTopology compiles cfg. modules holds the loaded guests by module name; it may lack modules
// that no route uses.
func NewTopology(cfg *config.Config, modules map[string]*wasmhost.Module) (*Topology, error) {
	t := &Topology{
		Config:   cfg,
		Targets:  make(map[string]*config.TargetSpec, len(cfg.Targets)),
		Modules:  modules,
		bySource: make(map[string]*sourceRoutes),
	}
	for i := range cfg.Targets {
		t.Targets[cfg.Targets[i].Name] = &cfg.Targets[i]
	}
	known := func(name string) bool { _, ok := t.Targets[name]; return ok }
	for _, rs := range cfg.Routes {
		r := &Route{Spec: rs, matcher: filters.NewMatcher(), targetSet: map[string]bool{}, known: known, decisions: &decisions{}, index: len(t.Routes),
			nameValue: rs.Name, sourceValue: rs.Source}
		for _, p := range rs.Match {
			if err := r.matcher.Add(p, 0); err != nil {
				return nil, fmt.Errorf("route %q: %w", rs.Name, err)
			}
		}
		var err error
		if r.filters, err = lookupModules(modules, rs.Filters); err != nil {
			return nil, fmt.Errorf("route %q: %w", rs.Name, err)
		}
		if r.transforms, err = lookupModules(modules, rs.Transforms); err != nil {
			return nil, fmt.Errorf("route %q: %w", rs.Name, err)
		}
		if rs.Handler != "" {
			hs, err := lookupModules(modules, []string{rs.Handler})
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", rs.Name, err)
			}
			r.handler = hs[0]
		}
		for _, tn := range rs.Targets {
			r.targetSet[tn] = true
		}
		t.Routes = append(t.Routes, r)
		sr := t.bySource[rs.Source]
		if sr == nil {
			sr = &sourceRoutes{matcher: filters.NewMatcher()}
			t.bySource[rs.Source] = sr
		}
		for _, p := range rs.Match {
			if err := sr.matcher.Add(p, len(sr.routes)); err != nil {
				return nil, fmt.Errorf("route %q: %w", rs.Name, err)
			}
		}
		sr.routes = append(sr.routes, r)
	}
	return t, nil
}

func lookupModules(modules map[string]*wasmhost.Module, names []string) ([]*wasmhost.Module, error) {
	out := make([]*wasmhost.Module, 0, len(names))
	for _, n := range names {
		m := modules[n]
		if m == nil {
			return nil, fmt.Errorf("module %q is not loaded", n)
		}
		out = append(out, m)
	}
	return out, nil
}

// Route returns the route named name, or nil.
func (t *Topology) Route(name string) *Route {
	for _, r := range t.Routes {
		if r.Spec.Name == name {
			return r
		}
	}
	return nil
}

// MatchingRoutes appends to dst the routes that take an event from source with routing key.
func (t *Topology) MatchingRoutes(source, routingKey string, dst []*Route) []*Route {
	sr := t.bySource[source]
	if sr == nil {
		return dst
	}
	var ids [16]int
	for _, id := range sr.matcher.Match(routingKey, ids[:0]) {
		dst = append(dst, sr.routes[id])
	}
	return dst
}

// AnyRouteMatches reports whether some route takes the event (for the unmatched counter).
func (t *Topology) AnyRouteMatches(source, routingKey string) bool {
	sr := t.bySource[source]
	return sr != nil && sr.matcher.Matches(routingKey)
}

// matchRoutes matches an event at ingest against every route, once: the streams of a topology
// in force read the result from the event instead of matching again (Route.keeps). It is
// carried only when the topology is in force (a generation) and every route it names is among
// the first 64; otherwise the zero RouteMatch leaves the streams to match. matched reports whether
// some route takes the event.
func (t *Topology) matchRoutes(source, routingKey string) (m event.RouteMatch, matched bool) {
	sr := t.bySource[source]
	if sr == nil {
		return m, false
	}
	var buf [16]int
	ids := sr.matcher.Match(routingKey, buf[:0])
	if len(ids) == 0 {
		return m, false
	}
	gen := sr.routes[ids[0]].generation
	if gen == 0 {
		return m, true
	}
	for _, id := range ids {
		i := sr.routes[id].index
		if i >= 64 {
			return event.RouteMatch{}, true
		}
		m.Set |= 1 << i
	}
	m.Generation = gen
	return m, true
}

// ModuleRoles lists, per module name, the roles the routes use it in, so that loading can check
// each module has the entry points it needs.
func ModuleRoles(cfg *config.Config) map[string][]wasmhost.Role {
	roles := map[string][]wasmhost.Role{}
	add := func(name string, role wasmhost.Role) {
		for _, r := range roles[name] {
			if r == role {
				return
			}
		}
		roles[name] = append(roles[name], role)
	}
	for _, r := range cfg.Routes {
		for _, m := range r.Filters {
			add(m, wasmhost.RoleFilter)
		}
		for _, m := range r.Transforms {
			add(m, wasmhost.RoleTransform)
		}
		if r.Handler != "" {
			add(r.Handler, wasmhost.RoleHandler)
		}
	}
	return roles
}
