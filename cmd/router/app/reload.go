package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// A generation is one configuration in force: the file as loaded, its modules (by name, with
// the content hash of each .wasm file and the roles it was checked for) and its number.
type generation struct {
	n        int
	cfg      *config.Config
	hash     string // SHA-256 of the configuration file
	loadedAt time.Time
	modules  map[string]*wasmhost.Module
	wasm     map[string]string
	roles    map[string][]wasmhost.Role
}

// ReloadRequest is the body of POST /api/v1/reload.
type ReloadRequest struct {
	DryRun  bool   `json:"dry_run"`
	History string `json:"history"` // a duration: add the what-if over that much of the log
}

// ReloadAnswer is what a reload did, or would do, or why it was refused.
type ReloadAnswer struct {
	Generation  int                  `json:"generation"`
	Applied     bool                 `json:"applied"`
	DryRun      bool                 `json:"dry_run,omitempty"`
	Changes     []config.Change      `json:"changes"`
	Abandoned   map[string]uint64    `json:"abandoned"`
	WhatIf      *router.DryRunReport `json:"what_if,omitempty"`
	Diagnostics []string             `json:"diagnostics,omitempty"`
	Millis      float64              `json:"duration_ms"`
}

// ReloadRecord is one reload in GET /api/v1/config's history.
type ReloadRecord struct {
	Time        time.Time         `json:"time"`
	Trigger     string            `json:"trigger"` // signal | api | watch
	Result      string            `json:"result"`  // applied | refused | unchanged | dry_run
	Generation  int               `json:"generation"`
	Changes     []string          `json:"changes"`
	Abandoned   map[string]uint64 `json:"abandoned,omitempty"`
	Diagnostics []string          `json:"diagnostics,omitempty"`
	Millis      float64           `json:"duration_ms"`
}

// ConfigInfo is GET /api/v1/config.
type ConfigInfo struct {
	Generation int            `json:"generation"`
	LoadedAt   time.Time      `json:"loaded_at"`
	File       string         `json:"file"`
	Hash       string         `json:"hash"`
	Reloads    []ReloadRecord `json:"reloads"`
}

// reloadHistory is how many past reloads GET /api/v1/config keeps.
const reloadHistory = 20

// Reloader loads the configuration file again and puts it in force (see router.Engine.Reload),
// one reload at a time. It owns the modules of the generation in force.
type Reloader struct {
	engine    *router.Engine
	host      *wasmhost.Host
	metrics   *metrics.Metrics
	log       *slog.Logger
	lookupEnv func(string) (string, bool)
	levels    *slog.LevelVar

	mu      sync.Mutex
	gen     *generation
	history []ReloadRecord
}

var _ admin.Reloader = (*Reloader)(nil)

// configHash is the SHA-256 of the configuration file ("" when unreadable).
func configHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// moduleHashes hashes every module's .wasm file, before it is compiled: if a file changes in
// between, the recorded hash is the older one and the next reload loads the module again.
func moduleHashes(cfg *config.Config) map[string]string {
	out := make(map[string]string, len(cfg.Modules))
	for _, m := range cfg.Modules {
		out[m.Name] = config.FileHash(m.Path)
	}
	return out
}

// Close releases the modules of the generation in force.
func (r *Reloader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	CloseModules(context.Background(), r.gen.modules)
}

// Generation is the number of the generation in force.
func (r *Reloader) Generation() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen.n
}

// ConfigInfo implements admin.Reloader.
func (r *Reloader) ConfigInfo() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ConfigInfo{
		Generation: r.gen.n, LoadedAt: r.gen.loadedAt, File: r.gen.cfg.File, Hash: r.gen.hash,
		Reloads: append([]ReloadRecord{}, r.history...),
	}
}

// Reload implements admin.Reloader.
func (r *Reloader) Reload(ctx context.Context, body []byte) (int, any) {
	var req ReloadRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return http.StatusBadRequest, map[string]string{"error": "reload request: " + err.Error()}
		}
	}
	if req.History != "" {
		if d, err := time.ParseDuration(req.History); err != nil || d <= 0 {
			return http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("history %q is not a positive duration", req.History)}
		}
	}
	ans := r.Do(ctx, req, "api")
	if len(ans.Diagnostics) > 0 {
		return http.StatusUnprocessableEntity, ans
	}
	return http.StatusOK, ans
}

// Do loads the configuration file again and applies it (or, for a dry run, says what it would
// do), all or nothing. trigger names what asked for it, for the history and the log.
func (r *Reloader) Do(ctx context.Context, req ReloadRequest, trigger string) ReloadAnswer {
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	ans, cand := r.reload(ctx, req)
	ans.Millis = float64(time.Since(start).Microseconds()) / 1000
	if ans.Changes == nil {
		ans.Changes = []config.Change{}
	}
	if ans.Abandoned == nil {
		ans.Abandoned = map[string]uint64{}
	}
	rec := ReloadRecord{
		Time: start.UTC(), Trigger: trigger, Generation: ans.Generation, Abandoned: ans.Abandoned,
		Diagnostics: ans.Diagnostics, Millis: ans.Millis, Changes: []string{},
	}
	for _, c := range ans.Changes {
		rec.Changes = append(rec.Changes, c.String())
	}
	switch {
	case len(ans.Diagnostics) > 0:
		rec.Result = "refused"
		r.metrics.ConfigReloads.WithLabelValues("refused").Inc()
		r.log.Error("reload refused; the running configuration is unchanged", "trigger", trigger,
			"generation", r.gen.n, "diagnostics", strings.Join(ans.Diagnostics, "; "))
	case req.DryRun:
		rec.Result = "dry_run"
		r.log.Info("reload dry run", "trigger", trigger, "would_apply_generation", ans.Generation, "changes", strings.Join(rec.Changes, "; "))
	case cand == nil:
		rec.Result = "unchanged"
		r.metrics.ConfigReloads.WithLabelValues("applied").Inc()
		r.log.Info("reload: configuration unchanged", "trigger", trigger, "generation", ans.Generation)
	default:
		rec.Result = "applied"
		r.metrics.ConfigReloads.WithLabelValues("applied").Inc()
		r.metrics.ConfigGeneration.Set(float64(ans.Generation))
		r.log.Info("reload applied", "trigger", trigger, "generation", ans.Generation,
			"changes", strings.Join(rec.Changes, "; "), "abandoned", ans.Abandoned, "duration_ms", ans.Millis)
	}
	r.history = append(r.history, rec)
	if len(r.history) > reloadHistory {
		r.history = slices.Delete(r.history, 0, len(r.history)-reloadHistory)
	}
	return ans
}

// reload does the work of Do under r.mu; the candidate generation is nil when nothing was put
// in force.
func (r *Reloader) reload(ctx context.Context, req ReloadRequest) (ReloadAnswer, *generation) {
	cur := r.gen
	ans := ReloadAnswer{Generation: cur.n, DryRun: req.DryRun}
	refuse := func(diags hcl.Diagnostics) (ReloadAnswer, *generation) {
		var b strings.Builder
		config.FormatDiagnostics(&b, diags)
		for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			if strings.Contains(line, ": error: ") || strings.HasPrefix(line, "error: ") {
				ans.Diagnostics = append(ans.Diagnostics, line)
			}
		}
		return ans, nil
	}

	hash := configHash(cur.cfg.File)
	cfg, diags := config.Load(cur.cfg.File, r.lookupEnv)
	if diags.HasErrors() {
		return refuse(diags)
	}
	if diags := config.NeedsRestart(cur.cfg, cfg); diags.HasErrors() {
		return refuse(diags)
	}
	wasm := moduleHashes(cfg)
	ans.Changes = config.Changes(cur.cfg, cfg, cur.wasm, wasm)
	next := &generation{n: cur.n + 1, cfg: cfg, hash: hash, wasm: wasm, roles: router.ModuleRoles(cfg)}

	modules, fresh, diags := r.loadModules(ctx, cur, next)
	release := func() { CloseModules(context.Background(), fresh) }
	if diags.HasErrors() {
		release()
		return refuse(diags)
	}
	next.modules = modules
	topo, err := router.NewTopology(cfg, modules)
	if err != nil {
		release()
		return refuse(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: err.Error(), Subject: &hcl.Range{Filename: cfg.File}}})
	}
	if req.History != "" {
		rep, err := r.engine.WhatIf(ctx, req.History, topo)
		if err != nil {
			release()
			return refuse(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "what-if over " + req.History + " of history: " + err.Error()}})
		}
		ans.WhatIf = &rep
	}
	if len(ans.Changes) == 0 {
		release() // nothing to put in force: the generation stays
		return ans, nil
	}
	if req.DryRun {
		release()
		ans.Generation = next.n
		return ans, nil
	}

	res, err := r.engine.Reload(ctx, topo)
	if err != nil {
		release()
		return refuse(hcl.Diagnostics{reloadDiagnostic(cfg, err)})
	}
	if cfg.Router.MemoryLimit != cur.cfg.Router.MemoryLimit {
		setMemoryLimit(cfg.Router.MemoryLimit, r.log)
	}
	if cfg.Router.LogLevel != cur.cfg.Router.LogLevel && r.levels != nil {
		var level slog.Level
		_ = level.UnmarshalText([]byte(cfg.Router.LogLevel))
		r.levels.Set(level)
	}
	// The modules the new generation does not use are closed once no batch calls them.
	retired := map[string]*wasmhost.Module{}
	for name, m := range cur.modules {
		if modules[name] != m {
			retired[name] = m
		}
	}
	go func() {
		<-res.Retired
		CloseModules(context.Background(), retired)
	}()
	next.loadedAt = time.Now().UTC()
	next.n = int(res.Generation)
	r.gen = next
	ans.Generation = next.n
	ans.Applied = true
	ans.Abandoned = res.Abandoned
	return ans, next
}

// loadModules gives next its modules: those whose block, .wasm content and roles are as in
// cur are the very same (their pools keep running); the others are compiled and instantiated
// now (fresh, for the caller to release if the reload does not go through).
func (r *Reloader) loadModules(ctx context.Context, cur, next *generation) (all, fresh map[string]*wasmhost.Module, diags hcl.Diagnostics) {
	all = map[string]*wasmhost.Module{}
	fresh = map[string]*wasmhost.Module{}
	for _, ms := range next.cfg.Modules {
		prev := cur.cfg.Module(ms.Name)
		if prev != nil && cur.modules[ms.Name] != nil && sameModule(*prev, ms) &&
			cur.cfg.Router.MaxMessageSize == next.cfg.Router.MaxMessageSize && // guests' writes are capped by it
			cur.wasm[ms.Name] == next.wasm[ms.Name] && next.wasm[ms.Name] != "" &&
			rolesCovered(cur.roles[ms.Name], next.roles[ms.Name]) {
			all[ms.Name] = cur.modules[ms.Name]
			continue
		}
		m, d := loadModule(ctx, r.host, ms, next.roles[ms.Name], 0, next.cfg.Router.MaxMessageSize)
		if d != nil {
			diags = append(diags, d)
			continue
		}
		all[ms.Name] = m
		fresh[ms.Name] = m
	}
	return all, fresh, diags
}

func sameModule(a, b config.ModuleSpec) bool {
	return a.Path == b.Path && maps.Equal(a.Config, b.Config) && a.Timeout == b.Timeout &&
		a.MaxMemory == b.MaxMemory && a.PoolSize == b.PoolSize
}

// rolesCovered reports whether a module checked for had was checked for every role in need.
func rolesCovered(had, need []wasmhost.Role) bool {
	for _, r := range need {
		if !slices.Contains(had, r) {
			return false
		}
	}
	return true
}

// reloadDiagnostic puts an engine's refusal at the block it concerns.
func reloadDiagnostic(cfg *config.Config, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reload refused", Detail: err.Error(), Subject: &hcl.Range{Filename: cfg.File}}
	var re *amqpx.PrepareError
	if errors.As(err, &re) {
		var rng hcl.Range
		switch re.Kind {
		case "cluster":
			if c := cfg.Cluster(re.Name); c != nil {
				rng = c.Range
			}
		case "target":
			if t := cfg.Target(re.Name); t != nil {
				rng = t.Range
			}
		case "source":
			if s := cfg.Source(re.Name); s != nil {
				rng = s.Range
			}
		}
		if rng.Filename != "" {
			d.Subject = &rng
		}
	}
	return d
}
