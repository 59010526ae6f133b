// Command chaos is wasmrouter's reliability suite: it runs the router binary against the real
// broker under steady traffic while it injects trouble (crashes, broker faults, a full disk,
// hostile input), then accounts for every message the broker confirmed. A scenario passes
// when none was lost: each reached its target or the dead-letter target. It exits 1 when any
// scenario fails.
//
//	go run ./chaos [-scenario all|kill,connclose,...] [-duration 60s] [-rate 1000] [-seed 1] [-short] [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the harness's settings.
type options struct {
	routerBin     string
	amqpURL       string
	scenarios     []string
	duration      time.Duration
	drainTimeout  time.Duration
	rate          int
	seed          int64
	short         bool
	json          bool
	brokerRestart bool // allow stop_app/start_app
	closeAll      bool // close every broker connection instead of this run's own
	fastP99       time.Duration
	workDir       string
	keep          bool
	guest         string // the hostile guest module for the poison scenario
	// diskReadiness requires /readyz to answer 503 while the log cannot be written.
	diskReadiness bool
}

// shortOptions is the quick profile for CI: short scenarios, nothing that disturbs other
// users of the broker.
func (o *options) applyShort(set map[string]bool) {
	if !set["duration"] {
		o.duration = 12 * time.Second
	}
	if !set["rate"] {
		o.rate = 500
	}
	if !set["broker-restart"] {
		o.brokerRestart = false
	}
	if !set["drain-timeout"] {
		o.drainTimeout = 60 * time.Second
	}
}

func defaultURL() string {
	if u := os.Getenv("WASMROUTER_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var list string
	fs.StringVar(&o.routerBin, "router", "bin/router", "path of the router binary")
	fs.StringVar(&o.amqpURL, "amqp-url", "", "broker URL (default: WASMROUTER_AMQP_URL, else the local broker as guest)")
	fs.StringVar(&list, "scenario", "all", "scenarios to run, comma-separated: all, or "+strings.Join(scenarioNames(), ","))
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "traffic and faults per scenario")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Minute, "bound on the wait for the router to deliver what it holds")
	fs.IntVar(&o.rate, "rate", 1000, "messages published per second")
	fs.Int64Var(&o.seed, "seed", 1, "seed for the random fault times")
	fs.BoolVar(&o.short, "short", false, "quick profile for CI: 12s per scenario at 500 msg/s, no broker restart")
	fs.BoolVar(&o.json, "json", false, "print the results as one JSON object on stdout")
	fs.BoolVar(&o.brokerRestart, "broker-restart", true, "run the brokerrestart scenario (rabbitmqctl stop_app/start_app disturbs every broker user)")
	fs.BoolVar(&o.closeAll, "close-all", false, "connclose: close every connection on the broker, not only this run's")
	fs.DurationVar(&o.fastP99, "fast-p99", 2*time.Second, "slow: the bound on the fast target's 99th percentile latency")
	fs.StringVar(&o.workDir, "workdir", "", "directory for the scenarios' files (default: the system temp dir)")
	fs.StringVar(&o.guest, "guest", "wasmhost/testdata/c/hostile.wasm", "poison: the guest module that misbehaves on header \"op\"")
	fs.BoolVar(&o.diskReadiness, "disk-readiness", true, "disk: require /readyz to answer 503 while the log cannot be written")
	fs.BoolVar(&o.keep, "keep", false, "keep every scenario's files (a failed scenario's are always kept)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.amqpURL == "" {
		o.amqpURL = defaultURL()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.short {
		o.applyShort(set)
	}
	known := map[string]bool{"all": true}
	for _, n := range scenarioNames() {
		known[n] = true
	}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !known[s] {
			return nil, fmt.Errorf("unknown scenario %q (want all or %s)", s, strings.Join(scenarioNames(), ","))
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.rate <= 0 || o.duration <= 0 {
		return nil, fmt.Errorf("-rate and -duration must be positive")
	}
	var err error
	if o.guest, err = filepath.Abs(o.guest); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.routerBin); err != nil {
		return nil, fmt.Errorf("router binary: %w (build it with `go build -o bin/router ./cmd/router`)", err)
	}
	return o, nil
}

func scenarioNames() []string {
	var names []string
	for _, sc := range scenarios() {
		names = append(names, sc.name)
	}
	return names
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	progress := io.Writer(stdout)
	if o.json {
		progress = stderr
	}
	fmt.Fprintf(progress, "chaos: %s, seed %d, %v per scenario at %d msg/s\n", machine(), o.seed, o.duration, o.rate)
	results := runAll(ctx, o, progress)
	passed := ctx.Err() == nil
	for _, r := range results {
		passed = passed && r.Passed()
	}
	if o.json {
		if err := writeJSON(stdout, report{Started: started.UTC(), Machine: machine(), Seed: o.seed, Short: o.short, Passed: passed, Results: results}); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
	}
	if !passed {
		fmt.Fprintln(progress, "chaos: FAIL")
		return 1
	}
	fmt.Fprintln(progress, "chaos: PASS")
	return 0
}

// machine describes where the run happened, for the figures.
func machine() string {
	host, _ := os.Hostname()
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs %s, %s/%s, %s", host, runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
