package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// URLEnv passes the broker URL to the processes under test (an argument would show it in ps).
const URLEnv = "WASMROUTER_AMQP_URL"

// RunDir is what a side gets for one run: the names to use and a private directory that is
// removed after the run.
type RunDir struct {
	Topology Topology
	Dir      string
}

// Side is a consumer under test.
type Side interface {
	// Name labels results ("baseline", "router", "router-wasm", ...).
	Name() string
	// Start starts a consumer of run.Topology.SourceQueue that republishes every message to
	// run.Topology.TargetExchange: a process of its own, or a shovel inside the broker.
	Start(run RunDir) (Running, error)
	// SecondCluster reports whether the side also delivers to the target exchange of the
	// second cluster.
	SecondCluster() bool
}

// Baseline runs the plain amqp091-go loop (bench/cmd/baseline).
type Baseline struct {
	Bin      string
	URL      string
	Prefetch int
	// Callgrind, when set, runs the process under callgrind to count its instructions.
	Callgrind *Callgrind
	// Sink is the collector Config.TracingEndpoint names, when it is the bench's own: the
	// report says how many spans it received.
	Sink *OTLPSink
}

var _ Side = Baseline{}

// Name implements Side.
func (Baseline) Name() string { return "baseline" }

// SecondCluster implements Side.
func (Baseline) SecondCluster() bool { return false }

// Start implements Side.
func (b Baseline) Start(run RunDir) (Running, error) {
	t := run.Topology
	args := []string{"-queue", t.SourceQueue, "-exchange", t.TargetExchange, "-prefetch", fmt.Sprint(b.Prefetch)}
	return startCounted(b.Callgrind, b.Name(), b.Bin, args, filepath.Join(run.Dir, "baseline.log"), URLEnv+"="+b.URL)
}

// Router runs `router run` on a configuration made from Config for each run.
type Router struct {
	Bin    string
	Label  string // Name; default "router"
	Config RouterConfig
	// WarmCache compiles the modules into the run's compilation cache before the clock
	// starts (router guest run does: see warmCache), so the run measures a restart with a
	// warm cache.
	WarmCache bool
	// Profiling, when set, takes pprof profiles of every run.
	Profiling *Profiling
	// Callgrind, when set, runs the process under callgrind to count its instructions.
	Callgrind *Callgrind
	// Sink is the collector Config.TracingEndpoint names, when it is the bench's own: the
	// report says how many spans it received.
	Sink *OTLPSink
}

var _ Side = Router{}

// Name implements Side.
func (r Router) Name() string {
	if r.Label == "" {
		return "router"
	}
	return r.Label
}

// SecondCluster implements Side.
func (r Router) SecondCluster() bool { return r.Config.SecondURL != "" }

// Start implements Side: it writes the configuration, with a fresh store, into run.Dir.
func (r Router) Start(run RunDir) (Running, error) {
	c := r.Config
	c.Topology = run.Topology
	c.StorePath = filepath.Join(run.Dir, "data", "router.db")
	if c.AdminAddr == "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		c.AdminAddr = addr
	}
	addr := c.AdminAddr
	path := filepath.Join(run.Dir, "router.hcl")
	if err := os.WriteFile(path, []byte(c.HCL()), 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if r.WarmCache {
		if out, err := exec.Command(r.Bin, "validate", "-c", path).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bench: checking the configuration (router validate): %w: %s", err, out)
		}
		if err := r.warmCache(run.Dir, cacheDirOf(run.Dir, c)); err != nil {
			return nil, err
		}
	}
	var env []string
	if r.Profiling != nil {
		// The router samples no allocations unless GODEBUG asks (internal/memprofile):
		// the profiles taken want them, at the runtime's default rate.
		env = append(env, "GODEBUG=memprofilerate=524288")
	}
	p, err := startCounted(r.Callgrind, r.Name(), r.Bin, []string{"run", "-c", path}, filepath.Join(run.Dir, "router.log"), env...)
	if err == nil && r.Callgrind != nil {
		return &countedRouter{Process: p, admin: addr}, nil // not profiled as well: profiles would be counted
	}
	if err != nil || r.Profiling == nil {
		return p, err
	}
	return r.Profiling.start(p, addr, r.Name()), nil
}

// cacheDirOf is where `router run` on configuration c, written into configDir, keeps compiled
// modules: beside the store (a relative store path is the configuration file's), or in data/
// beside the configuration for a log on a stream.
func cacheDirOf(configDir string, c RouterConfig) string {
	dataDir := filepath.Join(configDir, "data")
	if c.Stream == nil {
		dataDir = filepath.Dir(c.StorePath)
		if !filepath.IsAbs(dataDir) {
			dataDir = filepath.Join(configDir, dataDir)
		}
	}
	return filepath.Join(dataDir, "wasm-cache")
}

// warmCache compiles the run's modules into cacheDir, where `router run` looks for them (the
// store's directory). router validate compiles into memory only, so the modules are compiled
// by `router guest run`, which keeps them in the user's cache directory: here one of the run's
// own (XDG_CACHE_HOME), moved into place afterwards. Compilation is keyed by the module's
// bytes, not by the configuration or the role, so one call per module fills the cache.
func (r Router) warmCache(runDir, cacheDir string) error {
	xdg, err := filepath.Abs(filepath.Join(runDir, "xdg-cache")) // the user's cache dir must be absolute
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	event := filepath.Join(runDir, "warm-event.json")
	if err := os.WriteFile(event, []byte(`{"routing_key": "warm", "body": {"id": "warm", "amount": 1000}}`), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for _, m := range []struct{ path, role string }{{r.Config.Filter, "filter"}, {r.Config.Transform, "transform"}} {
		if m.path == "" {
			continue
		}
		args := []string{"guest", "run", m.path, "--role", m.role, "--event", event}
		for k, v := range r.Config.ModuleConfig {
			args = append(args, "--config", k+"="+v)
		}
		cmd := exec.Command(r.Bin, args...)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+xdg)
		// A call that fails on the made-up event still compiled the module; a module that
		// does not load fails the run when the router starts.
		_ = cmd.Run()
	}
	compiled := filepath.Join(xdg, "wasmrouter", "wasm-cache")
	if _, err := os.Stat(compiled); err != nil {
		return fmt.Errorf("bench: warming the compilation cache (router guest run): %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cacheDir), 0o700); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.Rename(compiled, cacheDir); err != nil {
		return fmt.Errorf("bench: warming the compilation cache: %w", err)
	}
	return nil
}

// freeLoopbackAddr finds a port that is free now, for the router's admin API.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
