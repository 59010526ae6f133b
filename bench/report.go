package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Machine describes where the figures were measured.
type Machine struct {
	Date     string
	CPUs     int
	CPUModel string
	Memory   string
	RabbitMQ string
	Go       string
	Kernel   string
}

// DescribeMachine reads /proc and asks the broker its version.
func DescribeMachine(b *Broker) Machine {
	m := Machine{
		Date: time.Now().UTC().Format("2006-01-02"), CPUs: runtime.NumCPU(),
		RabbitMQ: b.Version(), Go: runtime.Version(),
		CPUModel: procField("/proc/cpuinfo", "model name"), Memory: procField("/proc/meminfo", "MemTotal"),
	}
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(v))
	}
	return m
}

// procField is the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func (m Machine) String() string {
	return fmt.Sprintf("%s; %d CPUs (%s); %s RAM; Linux %s; RabbitMQ %s; %s",
		m.Date, m.CPUs, m.CPUModel, m.Memory, m.Kernel, m.RabbitMQ, m.Go)
}

// Summary is the median of one side's runs.
type Summary struct {
	Side      string
	Runs      int
	Rate      float64       // msg/s
	CPUPerMsg time.Duration // consumer
	Broker    time.Duration // broker CPU per message
	Peak      int64         // peak RSS, bytes
	Anon      int64         // anonymous RSS at the end, bytes
	Other     float64       // other busy CPU, share of one core
	InBroker  bool          // the side runs inside the broker: its CPU is in Broker
	IOCalls   float64       // read and write system calls per message
	Switches  float64       // context switches per message
	Instr     float64       // instructions per message (callgrind), 0 when not counted
}

// Summarize takes the median per side, in order of first appearance.
func Summarize(results []Result) []Summary {
	var out []Summary
	for _, side := range sides(results) {
		var rate, cpu, broker, peak, anon, other, iocalls, sw, instr []float64
		inBroker := false
		for _, r := range results {
			if r.Side != side {
				continue
			}
			inBroker = r.InBroker
			rate = append(rate, r.Rate())
			cpu = append(cpu, float64(r.CPUPerMsg()))
			broker = append(broker, float64(r.BrokerCPU)/float64(r.N))
			peak = append(peak, float64(r.Peak))
			anon = append(anon, float64(r.Anon))
			other = append(other, r.OtherCPU().Seconds()/r.Elapsed.Seconds())
			iocalls = append(iocalls, float64(r.IOCalls)/float64(r.N))
			sw = append(sw, float64(r.Switches)/float64(r.N))
			instr = append(instr, r.Instructions)
		}
		out = append(out, Summary{
			Side: side, Runs: len(rate), Rate: median(rate), CPUPerMsg: time.Duration(median(cpu)),
			Broker: time.Duration(median(broker)), Peak: int64(median(peak)), Anon: int64(median(anon)), Other: median(other),
			InBroker: inBroker, IOCalls: median(iocalls), Switches: median(sw), Instr: median(instr),
		})
	}
	return out
}

func sides(results []Result) []string {
	var names []string
	for _, r := range results {
		if !slices.Contains(names, r.Side) {
			names = append(names, r.Side)
		}
	}
	return names
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// WriteRuns prints one line per run.
func WriteRuns(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tmessages\tseconds\tmsg/s\tCPU us/msg\tbroker CPU us/msg\tboth us/msg\tother CPU (cores)\tpeak RSS MiB\tanon RSS MiB\tio calls/msg\tswitches/msg\tdelivered\tleft in source\t")
	for _, r := range results {
		broker := us(r.BrokerCPU) / float64(r.N)
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%s\t%.1f\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%d\t%d\t\n", r.Side, r.N, r.Elapsed.Seconds(), r.Rate(),
			ownFigure(r.InBroker, us(r.CPUPerMsg())), broker, us(r.CPUPerMsg())+broker, r.OtherCPU().Seconds()/r.Elapsed.Seconds(),
			ownFigure(r.InBroker, mib(r.Peak)), ownFigure(r.InBroker, mib(r.Anon)),
			ownFigure2(r.InBroker, float64(r.IOCalls)/float64(r.N)), ownFigure2(r.InBroker, float64(r.Switches)/float64(r.N)), r.Delivered, r.SourceLeft)
	}
	tw.Flush()
}

// WriteSummary prints the medians and each side's ratios to the first side (the baseline).
func WriteSummary(w io.Writer, sums []Summary) {
	if len(sums) == 0 {
		return
	}
	base := sums[0]
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "side\truns\tmsg/s\tCPU us/msg\tbroker CPU us/msg\tboth us/msg\tother CPU (cores)\tpeak RSS MiB\tanon RSS MiB\tio calls/msg\tswitches/msg\trate vs %s\tCPU vs %s\tboth vs %s\t\n", base.Side, base.Side, base.Side)
	baseBoth := float64(base.CPUPerMsg + base.Broker)
	for _, s := range sums {
		cpuRatio := "-"
		if !s.InBroker && !base.InBroker {
			cpuRatio = fmt.Sprintf("%.2fx", float64(s.CPUPerMsg)/float64(base.CPUPerMsg))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%.1f\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%.3f\t%s\t%.2fx\t\n", s.Side, s.Runs, s.Rate,
			ownFigure(s.InBroker, us(s.CPUPerMsg)), us(s.Broker), us(s.CPUPerMsg+s.Broker), s.Other,
			ownFigure(s.InBroker, mib(s.Peak)), ownFigure(s.InBroker, mib(s.Anon)),
			ownFigure2(s.InBroker, s.IOCalls), ownFigure2(s.InBroker, s.Switches),
			s.Rate/base.Rate, cpuRatio, float64(s.CPUPerMsg+s.Broker)/baseBoth)
	}
	tw.Flush()
}

// WriteInstructions prints the instructions per message of the sides counted under callgrind,
// and their ratio to the first side's; nothing when none was counted.
func WriteInstructions(w io.Writer, sums []Summary) {
	var base float64
	for _, s := range sums {
		if s.Instr > 0 {
			base = s.Instr
			break
		}
	}
	if base == 0 {
		return
	}
	fmt.Fprintln(w, "\nInstructions per message (callgrind, medians; valid on a busy machine):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tinstructions/msg\tvs first\t")
	for _, s := range sums {
		if s.Instr > 0 {
			fmt.Fprintf(tw, "%s\t%.0f\t%.3fx\t\n", s.Side, s.Instr, s.Instr/base)
		}
	}
	tw.Flush()
}

// ownFigure formats a side's own CPU or memory figure, "-" for a side inside the broker,
// whose figures are part of the broker's.
func ownFigure(inBroker bool, v float64) string {
	if inBroker {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// ownFigure2 is ownFigure with two decimals.
func ownFigure2(inBroker bool, v float64) string {
	if inBroker {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// WriteLatency prints the latency runs.
func WriteLatency(w io.Writer, lat []LatencyResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tmsg/s\tsent\treceived\tp50 ms\tp90 ms\tp99 ms\tmax ms\tCPU us/msg\tpeak RSS MiB\t")
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, l := range lat {
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", l.Side, l.Rate, l.Sent, l.Received,
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ownFigure(l.InBroker, us(l.CPUPerMsg())), ownFigure(l.InBroker, mib(l.Peak)))
	}
	tw.Flush()
}

// WriteBenchstat prints the runs in Go's benchmark format, one line per run, so that
// `benchstat -col /side FILE` compares the sides. One op is one message.
func WriteBenchstat(w io.Writer, m Machine, results []Result, lat []LatencyResult) {
	WriteBenchstatAs(w, "E2E", m, results, lat)
}

// WriteBenchstatAs is WriteBenchstat with the throughput lines named BenchmarkNAME.
func WriteBenchstatAs(w io.Writer, name string, m Machine, results []Result, lat []LatencyResult) {
	fmt.Fprintf(w, "goos: %s\ngoarch: %s\npkg: github.com/wasmrouter/wasmrouter/bench\ncpu: %s\n", runtime.GOOS, runtime.GOARCH, m.CPUModel)
	for _, r := range results {
		fmt.Fprintf(w, "Benchmark%s/side=%s-%d\t1\t%.0f ns/op\t%.1f msgs/s", name, r.Side, m.CPUs, float64(r.Elapsed)/float64(r.N), r.Rate())
		if !r.InBroker {
			fmt.Fprintf(w, "\t%.0f cpu-ns/msg", float64(r.CPUPerMsg()))
		}
		if !r.InBroker {
			fmt.Fprintf(w, "\t%.2f iocalls/msg\t%.2f switches/msg\t%.2f vswitches/msg", float64(r.IOCalls)/float64(r.N),
				float64(r.Switches)/float64(r.N), float64(r.Voluntary)/float64(r.N))
		}
		if r.Instructions > 0 {
			fmt.Fprintf(w, "\t%.0f instructions/msg", r.Instructions)
		}
		// both: the side's CPU and the broker's, the one comparison that includes a side
		// running inside the broker.
		fmt.Fprintf(w, "\t%.0f broker-cpu-ns/msg\t%.0f both-cpu-ns/msg", float64(r.BrokerCPU)/float64(r.N), float64(r.CPU+r.BrokerCPU)/float64(r.N))
		if r.Peak > 0 || r.Anon > 0 { // measured for consumers only
			fmt.Fprintf(w, "\t%d peak-rss-bytes\t%d anon-rss-bytes", r.Peak, r.Anon)
		}
		fmt.Fprintln(w)
	}
	for _, l := range lat {
		fmt.Fprintf(w, "BenchmarkLatency/side=%s-%d\t1\t%d p50-ns\t%d p90-ns\t%d p99-ns", l.Side, m.CPUs, l.P50.Nanoseconds(), l.P90.Nanoseconds(), l.P99.Nanoseconds())
		if !l.InBroker {
			fmt.Fprintf(w, "\t%.0f cpu-ns/msg", float64(l.CPUPerMsg()))
		}
		fmt.Fprintln(w)
	}
}
