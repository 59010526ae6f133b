// Command replay measures `router replay` against the plain amqp091-go publish-with-confirms
// rate on the same broker, alternating the sides round by round. A log of -n events (persistent
// messages of -size bytes, as bench/cmd/e2e sends them) is written once. Each round:
//
//   - publish: a plain publisher (this program re-run as "replay publish": one confirm-mode
//     channel, -window publishes awaiting a confirm) sends the same -n messages, as they were
//     originally published, to the target exchange;
//   - publish-replayed (with -sides): the same publisher sends them as a replay delivers them,
//     with the mandatory flag and the x-router-* headers, which cost the broker time too;
//   - replay: `router replay --route all`, offline, delivers the log's -n events there;
//   - publish-window-N and NAME=ROUTER-BINARY (with -sides): the plain publisher with another
//     window, and a replay by another build.
//
// Every side is timed from process start to exit, so each pays for starting, connecting and
// waiting for its last confirm. The target queue must hold -n messages after each run; it is
// purged before the next.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wasmrouter/wasmrouter/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "publish" {
		os.Exit(publish(ctx, os.Args[2:], os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	n, size, rounds, window int
	sides                   string
	routerBin, workDir      string
	benchstatOut            string
	quietWait, timeout      time.Duration
	keep                    bool
	logStats                int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 100000, "events in the log, and messages per run")
	fs.IntVar(&o.size, "size", 1024, "message body `BYTES`")
	fs.IntVar(&o.rounds, "rounds", 3, "runs per side, alternating (0: none; with -log-stats, only that)")
	fs.IntVar(&o.logStats, "log-stats", 0, "also time `N` runs of 'router log stats' on the log (the scan of every record)")
	fs.IntVar(&o.window, "window", 1024, "plain publisher: publishes awaiting a confirm (a replay stream's window is 1024 events)")
	fs.StringVar(&o.sides, "sides", "publish,replay", "comma-separated `LIST` of publish, publish-replayed, publish-window-N (the plain publisher with N publishes awaiting a confirm), replay, NAME=ROUTER-BINARY (a replay by that build); the first is the reference")
	fs.StringVar(&o.routerBin, "router", "bin/router", "router binary")
	fs.StringVar(&o.workDir, "workdir", "", "`DIR` for the log (default: the system temp dir); use the broker's disk")
	fs.StringVar(&o.benchstatOut, "benchstat-out", "", "also write the benchstat lines to `FILE`")
	fs.DurationVar(&o.quietWait, "quiet-wait", 10*time.Second, "longest wait before each run for the machine to go idle")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for one run")
	fs.BoolVar(&o.keep, "keep", false, "keep the log, the router configuration and the exchanges and queues, to replay by hand")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if err := measure(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		return 1
	}
	return 0
}

func measure(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	url := os.Getenv(bench.URLEnv)
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	routerBin, err := filepath.Abs(o.routerBin)
	if err != nil {
		return err
	}
	b, err := bench.Dial(url)
	if err != nil {
		return err
	}
	defer b.Close()
	env := &bench.Env{Broker: b, QuietWait: o.quietWait, Progress: stderr}
	if port, perr := bench.BrokerPort(url); perr == nil {
		env.BrokerPID, _ = bench.FindBroker(port)
	}
	if o.workDir == "" {
		o.workDir = os.TempDir()
	}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.workDir, "replay-")
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil { // the router resolves paths against its config's directory
		return err
	}
	t := bench.NewTopology("bench.replay")
	if o.keep {
		fmt.Fprintf(stderr, "keeping %s and the exchanges and queues it names\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := b.Declare(t); err != nil {
		return err
	}
	defer func() {
		if o.keep {
			return
		}
		if derr := b.Delete(t); err == nil {
			err = derr
		}
	}()
	cfg := bench.RouterConfig{
		URL: url, StorePath: filepath.Join(dir, "events.db"), AdminAddr: "127.0.0.1:0", Prefetch: 1000, Topology: t,
	}
	confPath := filepath.Join(dir, "router.hcl")
	if err := os.WriteFile(confPath, []byte(cfg.HCL()), 0o600); err != nil {
		return err
	}
	runs, err := sideRuns(o, self, routerBin, confPath, url, t.TargetExchange)
	if err != nil && o.rounds > 0 {
		return err
	}
	fmt.Fprintf(stderr, "writing %d events into the log\n", o.n)
	if err := bench.FillLog(cfg.StorePath, t.SourceExchange, "replay", o.n, o.size); err != nil {
		return err
	}

	machine := bench.DescribeMachine(b)
	fmt.Fprintf(stdout, "machine: %s\n", machine)
	fmt.Fprintf(stdout, "method: %d rounds x %d persistent %d-byte messages per side, alternating, each side a process timed from start to exit; plain publisher window %d\n\n",
		o.rounds, o.n, o.size, o.window)
	if o.logStats > 0 {
		if err := timeLogStats(ctx, stdout, routerBin, confPath, o); err != nil {
			return err
		}
		if o.rounds == 0 {
			return nil
		}
	}
	var results []bench.Result
	for round := 1; round <= o.rounds; round++ {
		for _, c := range runs {
			c.N, c.Queue, c.Timeout = o.n, t.TargetQueue, o.timeout
			c.LogPath = filepath.Join(dir, fmt.Sprintf("%s-%d.log", c.Side, round))
			fmt.Fprintf(stderr, "round %d/%d: %s\n", round, o.rounds, c.Side)
			r, err := env.RunCommand(ctx, c)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	fmt.Fprintln(stdout, "Every run:")
	writeRuns(stdout, results)
	sums := bench.Summarize(results)
	fmt.Fprintln(stdout, "\nMedians:")
	writeMedians(stdout, sums)
	for _, s := range sums[1:] {
		if s.Side != "replay" {
			continue
		}
		ratio := s.Rate / sums[0].Rate
		verdict := "met"
		if ratio < 1.0 {
			verdict = "MISSED"
		}
		fmt.Fprintf(stdout, "replay: rate %.3f of %s (goal >= 1.0: %s)\n", ratio, sums[0].Side, verdict)
	}
	fmt.Fprintln(stdout, "\nbenchstat:")
	bench.WriteBenchstatAs(stdout, "Replay", machine, results, nil)
	if o.benchstatOut != "" {
		f, err := os.Create(o.benchstatOut)
		if err != nil {
			return err
		}
		bench.WriteBenchstatAs(f, "Replay", machine, results, nil)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// timeLogStats runs `router log stats` on the log o.logStats times, each a process timed from
// start to exit, and prints the times and the records scanned per second.
func timeLogStats(ctx context.Context, w io.Writer, routerBin, confPath string, o options) error {
	fmt.Fprintf(w, "'router log stats' over %d events (process start to exit):", o.n)
	for range o.logStats {
		cmd := exec.CommandContext(ctx, routerBin, "log", "stats", "-c", confPath)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("router log stats: %w\n%s", err, out)
		}
		if !strings.Contains(string(out), fmt.Sprintf(`"count":%d`, o.n)) {
			return fmt.Errorf("router log stats did not count %d events:\n%s", o.n, out)
		}
		fmt.Fprintf(w, " %.2fs (%.1fM records/s)", took.Seconds(), float64(o.n)/took.Seconds()/1e6)
	}
	fmt.Fprintln(w)
	return nil
}

// sideRuns are the commands of the sides asked for, in order.
func sideRuns(o options, self, routerBin, confPath, url, exchange string) ([]bench.CommandRun, error) {
	pub := []string{"publish", "-url", url, "-exchange", exchange, "-n", strconv.Itoa(o.n),
		"-size", strconv.Itoa(o.size), "-window", strconv.Itoa(o.window)}
	var runs []bench.CommandRun
	for _, name := range strings.Split(o.sides, ",") {
		switch name = strings.TrimSpace(name); name {
		case "publish":
			runs = append(runs, bench.CommandRun{Side: name, Bin: self, Args: pub})
		case "publish-replayed":
			runs = append(runs, bench.CommandRun{Side: name, Bin: self, Args: append(pub[:len(pub):len(pub)], "-as-replayed")})
		case "replay":
			runs = append(runs, bench.CommandRun{Side: name, Bin: routerBin, Args: []string{"replay", "-c", confPath, "--route", "all"}})
		default:
			if w, ok := strings.CutPrefix(name, "publish-window-"); ok {
				// The plain publisher with another window, to see what a wider one buys.
				if n, err := strconv.Atoi(w); err == nil && n > 0 {
					args := append(pub[:len(pub)-1:len(pub)-1], w)
					runs = append(runs, bench.CommandRun{Side: name, Bin: self, Args: args})
					continue
				}
			}
			// NAME=BIN: a replay by another router binary, to compare two builds in one run.
			side, bin, ok := strings.Cut(name, "=")
			if !ok || side == "" || bin == "" {
				return nil, fmt.Errorf("unknown side %q (want publish, publish-replayed, replay or NAME=ROUTER-BINARY)", name)
			}
			abs, err := filepath.Abs(bin)
			if err != nil {
				return nil, err
			}
			runs = append(runs, bench.CommandRun{Side: side, Bin: abs, Args: []string{"replay", "-c", confPath, "--route", "all"}})
		}
	}
	if len(runs) < 2 {
		return nil, fmt.Errorf("-sides needs a reference and at least one side to compare")
	}
	return runs, nil
}

func writeRuns(w io.Writer, results []bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tmessages\tseconds\tmsg/s\tCPU us/msg\tbroker CPU us/msg\tother CPU (cores)\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.1f\t%.1f\t%.2f\t\n", r.Side, r.N, r.Elapsed.Seconds(), r.Rate(),
			micros(r.CPUPerMsg()), micros(r.BrokerCPU)/float64(r.N), r.OtherCPU().Seconds()/r.Elapsed.Seconds())
	}
	tw.Flush()
}

func writeMedians(w io.Writer, sums []bench.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "side\truns\tmsg/s\tCPU us/msg\tbroker CPU us/msg\trate vs %s\tCPU vs %s\t\n", sums[0].Side, sums[0].Side)
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%.1f\t%.3f\t%.2fx\t\n", s.Side, s.Runs, s.Rate, micros(s.CPUPerMsg), micros(s.Broker),
			s.Rate/sums[0].Rate, float64(s.CPUPerMsg)/float64(sums[0].CPUPerMsg))
	}
	tw.Flush()
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// publish is the plain publisher's process.
func publish(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "broker `URL`")
	exchange := fs.String("exchange", "", "target `EXCHANGE`")
	n := fs.Int("n", 0, "messages")
	size := fs.Int("size", 1024, "body `BYTES`")
	window := fs.Int("window", 1024, "publishes awaiting a confirm")
	asReplayed := fs.Bool("as-replayed", false, "publish as a replay does: mandatory, with the x-router-* headers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := bench.PublishConfirmed(ctx, *url, *exchange, "replay", *n, *size, *window, *asReplayed); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
