// Command memory measures the router's resident memory through a large run, a backlog behind
// a target outage and a replay of the whole log (bench.MemorySpec), and plots it to an SVG.
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
	"text/tabwriter"
	"time"

	"github.com/wasmrouter/wasmrouter/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000000, "messages of each phase (the replay moves twice as many)")
	size := fs.Int("size", 1024, "message body `BYTES`")
	prefetch := fs.Int("prefetch", 1000, "the router's source prefetch")
	routerBin := fs.String("router", "bin/router", "router binary")
	svg := fs.String("svg", "bench/memory.svg", "write the plot to `FILE` (empty: none)")
	goal := fs.Float64("goal-mib", 32, "the goal line of the plot, MiB")
	workDir := fs.String("workdir", "bin/bench-work", "`DIR` for the router's store; use the broker's disk")
	timeout := fs.Duration("timeout", 30*time.Minute, "limit for each phase")
	every := fs.Duration("every", 100*time.Millisecond, "sampling interval")
	profileDir := fs.String("profile-dir", "", "save the router's heap profile and runtime statistics at each phase's peak into `DIR` (PHASE-peak.pb.gz, PHASE-peak.txt); the router samples its allocations (GODEBUG memprofilerate=524288 unless GODEBUG sets a rate), about 1.5 MiB more resident")
	runOnly := fs.Bool("run-only", false, "stop after the run phase")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if godebug := os.Getenv("GODEBUG"); *profileDir != "" && !strings.Contains(godebug, "memprofilerate=") {
		// The router samples no allocations unless asked (internal/memprofile): its heap
		// profiles would be empty. The router inherits the environment.
		os.Setenv("GODEBUG", strings.TrimPrefix(godebug+",memprofilerate=524288", ","))
	}
	url := os.Getenv(bench.URLEnv)
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	b, err := bench.Dial(url)
	if err != nil {
		fmt.Fprintln(stderr, "memory:", err)
		return 1
	}
	defer b.Close()
	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "memory:", err)
		return 1
	}
	env := &bench.Env{Broker: b, WorkDir: *workDir, Poll: 50 * time.Millisecond, QuietWait: 10 * time.Second, Progress: stderr}
	side := bench.Router{Bin: *routerBin, Label: "router", Config: bench.RouterConfig{URL: url, Prefetch: *prefetch}}
	res, err := env.Memory(ctx, side, bench.MemorySpec{N: *n, Size: *size, Every: *every, Timeout: *timeout, ProfileDir: *profileDir, RunOnly: *runOnly})
	if err != nil {
		fmt.Fprintln(stderr, "memory:", err)
		return 1
	}
	machine := bench.DescribeMachine(b)
	fmt.Fprintf(stdout, "machine: %s\nmethod: %d messages of %d bytes per phase, prefetch %d, RSS sampled every %s\n\n",
		machine, *n, *size, *prefetch, *every)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tevents\tseconds\tpeak RSS MiB\tpeak anonymous\tpeak executable\tpeak log mapped\twhat")
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	for _, ph := range res.Phases {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\n", ph.Name, ph.Events, (ph.End - ph.Start).Seconds(),
			mib(ph.Peak), mib(ph.PeakAnon), mib(ph.PeakExe), mib(ph.PeakLog), ph.Description)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "peak RSS of the process (VmHWM): %.1f MiB\n", float64(res.VmHWM)/(1<<20))
	if *svg != "" {
		f, err := os.Create(*svg)
		if err == nil {
			title := fmt.Sprintf("wasmrouter resident memory: %d-event run, %d-event outage backlog, %d-event replay (%s)",
				*n, *n, 2**n, machine.Date)
			err = bench.WriteMemorySVG(f, title, res, int64(*goal*(1<<20)))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "memory:", err)
			return 1
		}
		fmt.Fprintf(stdout, "plot: %s\n", *svg)
	}
	return 0
}
