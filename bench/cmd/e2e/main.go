// Command e2e measures the router against the plain amqp091-go loop on the same broker,
// alternating the sides round by round: throughput over a pre-filled queue, CPU per message
// and memory from /proc, then ingest-to-delivery latency at half the baseline's peak rate.
// It prints tables and benchstat lines (compare with `benchstat -col /side FILE`).
//
// Sides: baseline (bench/cmd/baseline), router (one source, one route, one target),
// router-traced (router with tracing on, every span exported over OTLP/HTTP to a collector in
// this process), router-wasm (the same with -filter and/or -transform modules on the route),
// router-go (the example Go filter and Go transform on the route, compilation cache warm),
// router-all (the target delivers to a second cluster too, mode "all", given by -dr-url),
// router-stream (the router with its log in a RabbitMQ stream on the same broker),
// router-stream-2 (two routers sharing one stream log on a three-node cluster: -stream-cluster,
// or a private one started for the run) and shovel (a RabbitMQ dynamic shovel, on-confirm,
// between the same queues; plugin rabbitmq_shovel) and redpanda (Redpanda Connect's amqp_0_9
// input and output between the same queues, a binary given by -redpanda-bin).
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
	routerBBin, routerCBin    string
	filter, transform, modCfg string
	goFilter, goTransform     string
	goModCfg                  string
	drURL                     string
	streamCluster             string
	latency                   bool
	latencyRate               float64
	latencyDur, warmup        time.Duration
	poll, timeout, quietWait  time.Duration
	maxOther                  float64
	retries                   int
	workDir, benchstatOut     string
	profileDir                string
	profileSeconds            int
	callgrindDir              string
	redpandaBin               string
	redpandaInFlight          int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 100000, "messages per throughput run")
	fs.IntVar(&o.size, "size", 1024, "message body `BYTES`")
	fs.IntVar(&o.prefetch, "prefetch", 1000, "consumer prefetch of every side")
	fs.IntVar(&o.rounds, "rounds", 3, "throughput runs per side, alternating (0 with -latency-rate: latency only)")
	fs.StringVar(&o.sides, "sides", "baseline,router", "comma-separated `LIST` of baseline, router, router-traced, router-wasm, router-go, router-all, router-stream, router-stream-2, shovel, redpanda; the first is the reference")
	fs.StringVar(&o.routerBin, "router", "bin/router", "router binary")
	fs.StringVar(&o.routerBBin, "router-b", "", "second router binary `PATH` for an A/B in one run: a router side named with the suffix \"@b\" (router@b, router-wasm@b, ...) runs it, alternating with the others")
	fs.StringVar(&o.routerCBin, "router-c", "", "third router binary `PATH`, for sides named with the suffix \"@c\" (see -router-b)")
	fs.StringVar(&o.baselineBin, "baseline", "bin/bench-baseline", "baseline binary (scripts/build-baseline.sh: upstream amqp091-go)")
	fs.StringVar(&o.filter, "filter", "", "router-wasm: WASM filter module `PATH`")
	fs.StringVar(&o.transform, "transform", "", "router-wasm: WASM transform module `PATH`")
	fs.StringVar(&o.modCfg, "module-config", "", "router-wasm: module config as `k=v,k2=v2`")
	fs.StringVar(&o.goFilter, "go-filter", "examples/wasm/threshold/threshold.wasm", "router-go: Go filter module `PATH`")
	fs.StringVar(&o.goTransform, "go-transform", "examples/wasm/redact/redact.wasm", "router-go: Go transform module `PATH`")
	fs.StringVar(&o.goModCfg, "go-module-config", "min=100,fields=id", "router-go: module config as `k=v,k2=v2` (every bench message passes min=100)")
	fs.StringVar(&o.drURL, "dr-url", "", "router-all: `URL` of the second cluster (another broker or vhost)")
	fs.StringVar(&o.streamCluster, "stream-cluster", "", "router-stream-2: comma-separated AMQP `URLS` of the nodes of the cluster for the log (default: start a private three-node cluster for the run, about a minute)")
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
	fs.StringVar(&o.profileDir, "profile-dir", "", "take pprof profiles of the router sides into `DIR` (CPU, allocations, heap; and their metrics at the end of each run; see BENCHMARKS.md)")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of each CPU profile, from the router's start; keep it below a run's length")
	fs.StringVar(&o.callgrindDir, "callgrind", "", "run the baseline and router sides under valgrind's callgrind, output into `DIR`, and report instructions per message (30-100x slower; use a few thousand messages and -latency=false)")
	fs.StringVar(&o.redpandaBin, "redpanda-bin", "", "redpanda: Redpanda Connect binary `PATH` with the amqp_0_9 input and output (BENCHMARKS.md says how to build one)")
	fs.IntVar(&o.redpandaInFlight, "redpanda-max-in-flight", bench.DefaultRedpandaMaxInFlight, "redpanda: the output's max_in_flight (publishes awaiting their confirm)")
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
	logCluster, stopCluster, err := streamCluster(o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "e2e:", err)
		return 1
	}
	defer stopCluster()
	sides, err := makeSides(o, url, logCluster)
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
	var spans []spanCount
	failed, disturbed := 0, 0
	for round := 1; round <= o.rounds; round++ {
		for _, s := range sides {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", round, o.rounds, s.Name())
			sink := sinkOf(s)
			before := sink.Spans()
			r, f, d, err := throughput(ctx, env, s, o, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "e2e: %s, round %d: %v\n", s.Name(), round, err)
				return 1
			}
			results, failed, disturbed = append(results, r), failed+f, disturbed+d
			if sink != nil {
				spans = append(spans, spanCount{side: s.Name(), round: round, got: sink.Spans() - before, want: 3 * int64(o.n), runs: 1 + f + d})
			}
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
		bench.WriteInstructions(stdout, sums)
		writeGoals(stdout, sums)
		writeSpans(stdout, spans)
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

// cpuGoals are the most CPU per message each router side may use, as a multiple of the plain
// loop's (the baseline side).
var cpuGoals = map[string]float64{"router": 1.15, "router-wasm": 1.2, "router-go": 1.5, "router-all": 1.5, "router-traced": 1.5}

// sideKind is a side's name without the suffix that picks another router binary (@b, @c).
func sideKind(side string) string {
	if i := strings.LastIndexByte(side, '@'); i > 0 {
		return side[:i]
	}
	return side
}

// Tracing's goals, against the router side: at least 0.9 of its rate and at most 15us more CPU
// per event.
const (
	tracedRateGoal = 0.9
	tracedCPUGoal  = 15 * time.Microsecond
)

// writeGoals checks each router side against the plain loop (rate >= 1.0x, CPU per message
// within cpuGoals) and against the Shovel when it ran (rate >= 0.9x).
func writeGoals(w io.Writer, sums []bench.Summary) {
	var loop, shovel, plain, oneStream, connect *bench.Summary
	for i := range sums {
		switch sums[i].Side {
		case "baseline":
			loop = &sums[i]
		case "shovel":
			shovel = &sums[i]
		case "router":
			plain = &sums[i]
		case "router-stream":
			oneStream = &sums[i]
		case "redpanda":
			connect = &sums[i]
		}
	}
	for _, s := range sums {
		if !strings.HasPrefix(s.Side, "router") {
			continue
		}
		if strings.HasPrefix(s.Side, "router-stream") {
			writeStreamGoals(w, s, plain, oneStream)
			continue
		}
		if loop != nil {
			ratio := s.Rate / loop.Rate
			cpu := float64(s.CPUPerMsg) / float64(loop.CPUPerMsg)
			fmt.Fprintf(w, "%s: rate %.3f of the loop (goal >= 1.0: %s), CPU/msg %.2fx (goal <= %.2fx: %s)\n",
				s.Side, ratio, verdict(ratio >= 1.0), cpu, cpuGoals[sideKind(s.Side)], verdict(cpu <= cpuGoals[sideKind(s.Side)]))
		}
		if s.Side == "router-traced" && plain != nil {
			ratio, extra := s.Rate/plain.Rate, s.CPUPerMsg-plain.CPUPerMsg
			fmt.Fprintf(w, "%s: rate %.3f of the router without tracing (goal >= %.1f: %s), %s more CPU per event (goal <= %s: %s)\n",
				s.Side, ratio, tracedRateGoal, verdict(ratio >= tracedRateGoal), extra, tracedCPUGoal, verdict(extra <= tracedCPUGoal))
		}
		if connect != nil {
			fmt.Fprintf(w, "%s: rate %.3f of Redpanda Connect, CPU/msg %.2fx its\n",
				s.Side, s.Rate/connect.Rate, float64(s.CPUPerMsg)/float64(connect.CPUPerMsg))
		}
		if shovel != nil {
			ratio := s.Rate / shovel.Rate
			both := float64(s.CPUPerMsg+s.Broker) / float64(shovel.CPUPerMsg+shovel.Broker)
			fmt.Fprintf(w, "%s: rate %.3f of the Shovel (goal >= 0.9: %s); its CPU and the broker's per message %.2fx the Shovel's\n",
				s.Side, ratio, verdict(ratio >= 0.9), both)
		}
	}
}

// Goals of the log on a stream: one router at >= 0.9 of the router on its bbolt log, two
// routers on one stream at >= 1.5x one router where the broker has room; CPU per event is
// every router's CPU added up.
const (
	streamRateGoal = 0.9
	twoRoutersGoal = 1.5
)

func writeStreamGoals(w io.Writer, s bench.Summary, plain, oneStream *bench.Summary) {
	fmt.Fprintf(w, "%s: %.0f msg/s, routers' CPU %s per event, broker's %s per event\n", s.Side, s.Rate, s.CPUPerMsg, s.Broker)
	switch {
	case s.Side == "router-stream" && plain != nil:
		fmt.Fprintf(w, "%s: rate %.3f of the router on bbolt (goal >= %.1f: %s); CPU per event %.2fx the router's\n",
			s.Side, s.Rate/plain.Rate, streamRateGoal, verdict(s.Rate/plain.Rate >= streamRateGoal), float64(s.CPUPerMsg)/float64(plain.CPUPerMsg))
	case s.Side == "router-stream-2" && oneStream != nil:
		fmt.Fprintf(w, "%s: rate %.3f of one router on a stream (goal >= %.1f where the broker has room: %s; the two sides' logs are on different brokers)\n",
			s.Side, s.Rate/oneStream.Rate, twoRoutersGoal, verdict(s.Rate/oneStream.Rate >= twoRoutersGoal))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func makeSides(o options, url string, logCluster logCluster) ([]bench.Side, error) {
	modCfg, err := bench.ParseModuleConfig(o.modCfg)
	if err != nil {
		return nil, err
	}
	base := bench.RouterConfig{URL: url, Prefetch: o.prefetch}
	var prof *bench.Profiling
	if o.profileDir != "" {
		if prof, err = bench.NewProfiling(o.profileDir, o.profileSeconds); err != nil {
			return nil, err
		}
	}
	var cg *bench.Callgrind
	if o.callgrindDir != "" {
		if cg, err = bench.NewCallgrind(o.callgrindDir); err != nil {
			return nil, err
		}
	}
	var sides []bench.Side
	for _, label := range strings.Split(o.sides, ",") {
		label = strings.TrimSpace(label)
		name, routerBin := label, o.routerBin
		for suffix, bin := range map[string]string{"@b": o.routerBBin, "@c": o.routerCBin} {
			if n, ok := strings.CutSuffix(label, suffix); ok && strings.HasPrefix(n, "router") {
				if bin == "" {
					return nil, fmt.Errorf("side %s needs -router-%s PATH", label, suffix[1:])
				}
				name, routerBin = n, bin
			}
		}
		switch name {
		case "baseline":
			sides = append(sides, bench.Baseline{Bin: o.baselineBin, URL: url, Prefetch: o.prefetch, Callgrind: cg})
		case "router":
			sides = append(sides, bench.Router{Bin: routerBin, Label: label, Config: base, Profiling: prof, Callgrind: cg})
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
			sides = append(sides, bench.Router{Bin: routerBin, Label: label, Config: c, Profiling: prof, Callgrind: cg})
		case "router-go":
			goCfg, err := bench.ParseModuleConfig(o.goModCfg)
			if err != nil {
				return nil, err
			}
			c := base
			if c.Filter, err = absPath(o.goFilter); err != nil {
				return nil, err
			}
			if c.Transform, err = absPath(o.goTransform); err != nil {
				return nil, err
			}
			c.ModuleConfig = goCfg
			sides = append(sides, bench.Router{Bin: routerBin, Label: label, Config: c, WarmCache: true, Profiling: prof, Callgrind: cg})
		case "shovel":
			sides = append(sides, bench.Shovel{URL: url, Prefetch: o.prefetch})
		case "router-traced":
			// Every span exported (ratio 1.0) to a collector in this process.
			sink, err := bench.StartOTLPSink()
			if err != nil {
				return nil, err
			}
			c := base
			c.TracingEndpoint = sink.URL
			sides = append(sides, bench.Router{Bin: routerBin, Label: label, Config: c, Profiling: prof, Callgrind: cg, Sink: sink})
		case "router-all":
			if o.drURL == "" {
				return nil, fmt.Errorf("side router-all needs -dr-url")
			}
			c := base
			c.SecondURL = o.drURL
			sides = append(sides, bench.Router{Bin: routerBin, Label: label, Config: c, Profiling: prof, Callgrind: cg})
		case "router-stream":
			sides = append(sides, bench.StreamRouters{Bin: routerBin, Label: label, Config: base, Routers: 1, Profiling: prof})
		case "router-stream-2":
			sides = append(sides, bench.StreamRouters{Bin: routerBin, Label: label, Config: base, Routers: 2, Profiling: prof,
				LogURLs: logCluster.urls, LogPorts: logCluster.ports, LogBrokers: logCluster.pids})
		case "redpanda":
			if o.redpandaBin == "" {
				return nil, fmt.Errorf("side redpanda needs -redpanda-bin PATH, a Redpanda Connect binary (BENCHMARKS.md says how to build one)")
			}
			sides = append(sides, bench.RedpandaConnect{Bin: o.redpandaBin, URL: url, Prefetch: o.prefetch, MaxInFlight: o.redpandaInFlight})
		default:
			return nil, fmt.Errorf("unknown side %q (want baseline, router, router-traced, router-wasm, router-go, router-all, router-stream, router-stream-2, shovel or redpanda)", name)
		}
	}
	if len(sides) == 0 {
		return nil, fmt.Errorf("no sides")
	}
	return sides, nil
}

// spanCount is what the bench's collector received during one round of a traced side.
type spanCount struct {
	side      string
	round     int
	got, want int64 // want: three spans (receive, process, send) per event of one run
	runs      int   // runs made for the round, repeats included
}

// sinkOf is the bench's collector of a traced side, nil for another side (whose Spans are 0).
func sinkOf(s bench.Side) *bench.OTLPSink {
	if r, ok := s.(bench.Router); ok {
		return r.Sink
	}
	return nil
}

// writeSpans says how many spans the collector received of the three per event a traced
// router makes; those missing were dropped by the router (router_trace_spans_dropped_total)
// or are still unexported.
func writeSpans(w io.Writer, counts []spanCount) {
	for _, c := range counts {
		if c.runs > 1 {
			fmt.Fprintf(w, "%s, round %d: the collector received %d spans over %d runs (%d per run of 3 per event)\n",
				c.side, c.round, c.got, c.runs, c.want)
			continue
		}
		fmt.Fprintf(w, "%s, round %d: the collector received %d of %d spans (3 per event), %d missing\n",
			c.side, c.round, c.got, c.want, c.want-c.got)
	}
}
