package router

import "time"

// TopologyView is the configuration in force as the console draws it: what flows from which
// source through which route to which target. Cluster URLs are left out (they may hold
// credentials); module configuration values too.
type TopologyView struct {
	File     string       `json:"file"`
	Clusters []string     `json:"clusters"`
	Sources  []SourceView `json:"sources"`
	Routes   []RouteView  `json:"routes"`
	Targets  []TargetView `json:"targets"`
	Modules  []ModuleView `json:"modules"`
	Store    StoreView    `json:"store"`
}

// SourceView is one source block.
type SourceView struct {
	Name     string   `json:"name"`
	Cluster  string   `json:"cluster"`
	Exchange string   `json:"exchange"`
	Queue    string   `json:"queue"`
	Bindings []string `json:"bindings"`
}

// RouteView is one route block; Delivers lists the targets it may publish to (every target
// for a route with a handler).
type RouteView struct {
	Name       string   `json:"name"`
	Source     string   `json:"source"`
	Match      []string `json:"match"`
	Filters    []string `json:"filters"`
	Transforms []string `json:"transforms"`
	Handler    string   `json:"handler,omitempty"`
	Targets    []string `json:"targets"`
	Delivers   []string `json:"delivers"`
	DeadLetter string   `json:"dead_letter,omitempty"`
}

// TargetView is one target block.
type TargetView struct {
	Name       string   `json:"name"`
	Mode       string   `json:"mode"`
	Clusters   []string `json:"clusters"`
	Exchange   string   `json:"exchange"`
	RoutingKey string   `json:"routing_key,omitempty"`
}

// ModuleView is one module block.
type ModuleView struct {
	Name      string        `json:"name"`
	Path      string        `json:"path"`
	Timeout   time.Duration `json:"timeout_ns"`
	MaxMemory int64         `json:"max_memory"`
	PoolSize  int           `json:"pool_size"`
}

// StoreView is the store block.
type StoreView struct {
	Backend   string        `json:"backend"`
	Path      string        `json:"path,omitempty"` // bbolt
	Retention time.Duration `json:"retention_ns"`
	MaxSize   int64         `json:"max_size"`
	OnFull    string        `json:"on_full,omitempty"`     // bbolt
	Cluster   string        `json:"cluster,omitempty"`     // stream
	Stream    string        `json:"stream,omitempty"`      // stream
	Takeover  time.Duration `json:"takeover_ns,omitempty"` // stream
}

// TopologyJSON answers GET /api/v1/topology.
func (e *Engine) TopologyJSON() any {
	topo := e.topo.Load()
	cfg := topo.Config
	v := TopologyView{
		File: cfg.File, Clusters: []string{}, Sources: []SourceView{}, Routes: []RouteView{},
		Targets: []TargetView{}, Modules: []ModuleView{},
		Store: StoreView{
			Backend: cfg.Store.Backend, Path: cfg.Store.Path, Retention: cfg.Store.Retention, MaxSize: cfg.Store.MaxSize,
			OnFull: cfg.Store.OnFull, Cluster: cfg.Store.Cluster, Stream: cfg.Store.Stream, Takeover: cfg.Store.Takeover,
		},
	}
	for _, c := range cfg.Clusters {
		v.Clusters = append(v.Clusters, c.Name)
	}
	for _, s := range cfg.Sources {
		v.Sources = append(v.Sources, SourceView{Name: s.Name, Cluster: s.Cluster, Exchange: s.Exchange, Queue: s.Queue, Bindings: s.Bindings})
	}
	for _, r := range topo.Routes {
		s := r.Spec
		v.Routes = append(v.Routes, RouteView{
			Name: s.Name, Source: s.Source, Match: s.Match, Filters: nonNil(s.Filters), Transforms: nonNil(s.Transforms),
			Handler: s.Handler, Targets: nonNil(s.Targets), Delivers: nonNil(r.DeliveryTargets(topo)), DeadLetter: s.DeadLetter,
		})
	}
	for _, t := range cfg.Targets {
		v.Targets = append(v.Targets, TargetView{Name: t.Name, Mode: t.Mode, Clusters: t.Clusters, Exchange: t.Exchange, RoutingKey: t.RoutingKey})
	}
	for _, m := range cfg.Modules {
		v.Modules = append(v.Modules, ModuleView{Name: m.Name, Path: m.Path, Timeout: m.Timeout, MaxMemory: m.MaxMemory, PoolSize: m.PoolSize})
	}
	return v
}
