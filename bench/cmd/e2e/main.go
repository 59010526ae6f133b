// Command e2e measures the router against the plain amqp091-go loop on the same broker,
// alternating the sides round by round: throughput over a pre-filled queue, CPU per message
// and memory from /proc, then ingest-to-delivery latency at half the baseline's peak rate.
// It prints tables and benchstat lines (compare with `benchstat -col /side FILE`).
//
// Sides: baseline (bench/cmd/baseline), router (one source, one route, one target),
// router-wasm (the same with -filter and/or -transform modules on the route) and router-all
// (the target delivers to a second cluster too, mode "all", given by -dr-url).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wasmrouter/wasmrouter/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	n, size, prefetch, rounds int
	sides                     string
	routerBin, baselineBin    string
	filter, transform, modCfg string
	drURL                     string
	latency                   bool
	latencyRate               float64
	latencyDur, warmup        time.Duration
	poll, timeout, quietWait  time.Duration
	maxOther                  float64
	retries                   int
	workDir, benchstatOut     string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 100000, "messages per throughput run")
	fs.IntVar(&o.size, "size", 1024, "message body `BYTES`")
	fs.IntVar(&o.prefetch, "prefetch", 1000, "consumer prefetch of every side")
	fs.IntVar(&o.rounds, "rounds", 3, "throughput runs per side, alternating (0 with -latency-rate: latency only)")
	fs.StringVar(&o.sides, "sides", "baseline,router", "comma-separated `LIST` of baseline, router, router-wasm, router-all; the first is the reference")
	fs.StringVar(&o.routerBin, "router", "bin/router", "router binary")
	fs.StringVar(&o.baselineBin, "baseline", "bin/bench-baseline", "baseline binary (go build ./bench/cmd/baseline)")
	fs.StringVar(&o.filter, "filter", "", "router-wasm: WASM filter module `PATH`")
	fs.StringVar(&o.transform, "transform", "", "router-wasm: WASM transform module `PATH`")
	fs.StringVar(&o.modCfg, "module-config", "", "router-wasm: module config as `k=v,k2=v2`")
	fs.StringVar(&o.drURL, "dr-url", "", "router-all: `URL` of the second cluster (another broker or vhost)")
	fs.BoolVar(&o.latency, "latency", true, "also measure latency at a fixed rate")
	fs.Float64Var(&o.latencyRate, "latency-rate", 0, "latency run rate in msg/s; 0: half the reference side's median throughput")
	fs.DurationVar(&o.latencyDur, "latency-duration", 20*time.Second, "latency run publishing time")
	fs.DurationVar(&o.warmup, "latency-warmup", 2*time.Second, "leading part of a latency run left out of the percentiles")
	fs.DurationVar(&o.poll, "poll", 20*time.Millisecond, "target queue polling interval")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for one run")
	fs.DurationVar(&o.quietWait, "quiet-wait", 10*time.Second, "longest wait before each run for the machine to go idle (under 0.25 cores busy)")
	fs.Float64Var(&o.maxOther, "max-other", 0.3, "repeat a run during which other processes used more than this many `cores` on average (0: never)")
	fs.IntVar(&o.retries, "retries", 3, "most repeats of one run that failed or was disturbed")
	fs.StringVar(&o.workDir, "workdir", "", "`DIR` for router stores and logs (default: the system temp dir); use the broker's disk")
	fs.StringVar(&o.benchstatOut, "benchstat-out", "", "also write the benchstat lines to `FILE`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "e2e:", err)
		return 2
	}
	url := os.Getenv(bench.URLEnv)
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	sides, err := makeSides(o, url)
	if err != nil {
		fmt.Fprintln(stderr, "e2e:", err)
		return 2
	}
	env, closeEnv, err := makeEnv(o, url, sides, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "e2e:", err)
		return 1
	}
	defer closeEnv()
	machine := bench.DescribeMachine(env.Broker)
	fmt.Fprintf(stdout, "machine: %s\n", machine)
	fmt.Fprintf(stdout, "method: %d rounds x %d pre-filled persistent %d-byte messages per side, alternating; prefetch %d\n\n",
		o.rounds, o.n, o.size, o.prefetch)

	var results []bench.Result
	failed, disturbed := 0, 0
	for round := 1; round <= o.rounds; round++ {
		for _, s := range sides {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", round, o.rounds, s.Name())
			r, f, d, err := throughput(ctx, env, s, o, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "e2e: %s, round %d: %v\n", s.Name(), round, err)
				return 1
			}
			results, failed, disturbed = append(results, r), failed+f, disturbed+d
		}
	}
	if failed+disturbed > 0 {
		fmt.Fprintf(stdout, "Repeated runs: %d failed (errors in the progress output), %d disturbed by other load over %.2f cores\n\n",
			failed, disturbed, o.maxOther)
	}
	sums := bench.Summarize(results)
	if len(results) > 0 {
		fmt.Fprintln(stdout, "Throughput, every run:")
		bench.WriteRuns(stdout, results)
		fmt.Fprintln(stdout, "\nThroughput, medians:")
		bench.WriteSummary(stdout, sums)
		writeGoals(stdout, sums)
	}

	var lat []bench.LatencyResult
	if o.latency && (len(sums) > 0 || o.latencyRate > 0) {
		rate := o.latencyRate
		if rate <= 0 {
			rate = sums[0].Rate / 2
		}
		for _, s := range sides {
			spec := bench.LatencySpec{Rate: rate, Duration: o.latencyDur, Warmup: o.warmup, Size: o.size, Timeout: time.Minute}
			l, err := env.Latency(ctx, s, spec)
			if err != nil {
				fmt.Fprintf(stderr, "e2e: latency, %s: %v\n", s.Name(), err)
				return 1
			}
			lat = append(lat, l)
		}
		fmt.Fprintf(stdout, "\nLatency at %.0f msg/s (publish due time to receipt from the target queue; first %s left out):\n", rate, o.warmup)
		bench.WriteLatency(stdout, lat)
	}

	fmt.Fprintln(stdout, "\nbenchstat:")
	bench.WriteBenchstat(stdout, machine, results, lat)
	if o.benchstatOut != "" {
		f, err := os.Create(o.benchstatOut)
		if err != nil {
			fmt.Fprintln(stderr, "e2e:", err)
			return 1
		}
		bench.WriteBenchstat(f, machine, results, lat)
		if err := f.Close(); err != nil {
			fmt.Fprintln(stderr, "e2e:", err)
			return 1
		}
	}
	return 0
}

// throughput runs one throughput measurement, repeating it up to o.retries times while it
// fails (on a shared broker, someone may restart it) or other load on the machine disturbed
// it; it returns the last run and how many attempts failed and were disturbed.
func throughput(ctx context.Context, env *bench.Env, s bench.Side, o options, stderr io.Writer) (r bench.Result, failed, disturbed int, err error) {
	for attempt := 0; ; attempt++ {
		r, err = env.Throughput(ctx, s, bench.ThroughputSpec{N: o.n, Size: o.size, Timeout: o.timeout})
		last := attempt == o.retries || ctx.Err() != nil
		if err != nil {
			if last {
				return r, failed, disturbed, err
			}
			failed++
			fmt.Fprintf(stderr, "%s: the run failed; repeating it: %v\n", s.Name(), err)
			continue
		}
		other := r.OtherCPU().Seconds() / r.Elapsed.Seconds()
		if o.maxOther <= 0 || other <= o.maxOther || last {
			return r, failed, disturbed, nil
		}
		disturbed++
		fmt.Fprintf(stderr, "%s: other load averaged %.2f cores during the run; repeating it\n", s.Name(), other)
	}
}

// writeGoals checks each router side against the reference: at least 0.85 of its rate, at
// most 1.3 times its CPU per message.
func writeGoals(w io.Writer, sums []bench.Summary) {
	base := sums[0]
	for _, s := range sums[1:] {
		ratio := s.Rate / base.Rate
		cpu := float64(s.CPUPerMsg) / float64(base.CPUPerMsg)
		fmt.Fprintf(w, "%s: rate %.3f of %s (goal >= 0.85: %s), CPU/msg %.2fx (goal <= 1.3x: %s)\n",
			s.Side, ratio, base.Side, verdict(ratio >= 0.85), cpu, verdict(cpu <= 1.3))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func makeSides(o options, url string) ([]bench.Side, error) {
	modCfg, err := bench.ParseModuleConfig(o.modCfg)
	if err != nil {
		return nil, err
	}
	base := bench.RouterConfig{URL: url, Prefetch: o.prefetch}
	var sides []bench.Side
	for _, name := range strings.Split(o.sides, ",") {
		switch name = strings.TrimSpace(name); name {
		case "baseline":
			sides = append(sides, bench.Baseline{Bin: o.baselineBin, URL: url, Prefetch: o.prefetch})
		case "router":
			sides = append(sides, bench.Router{Bin: o.routerBin, Label: name, Config: base})
		case "router-wasm":
			if o.filter == "" && o.transform == "" {
				return nil, fmt.Errorf("side router-wasm needs -filter and/or -transform")
			}
			c := base
			if c.Filter, err = absPath(o.filter); err != nil {
				return nil, err
			}
			if c.Transform, err = absPath(o.transform); err != nil {
				return nil, err
			}
			c.ModuleConfig = modCfg
			sides = append(sides, bench.Router{Bin: o.routerBin, Label: name, Config: c})
		case "router-all":
			if o.drURL == "" {
				return nil, fmt.Errorf("side router-all needs -dr-url")
			}
			c := base
			c.SecondURL = o.drURL
			sides = append(sides, bench.Router{Bin: o.routerBin, Label: name, Config: c})
		default:
			return nil, fmt.Errorf("unknown side %q (want baseline, router, router-wasm or router-all)", name)
		}
	}
	if len(sides) == 0 {
		return nil, fmt.Errorf("no sides")
	}
	return sides, nil
}
