package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store/streamlog"
)

// StreamStore puts a run's log in a RabbitMQ stream (store { backend = "stream" }).
type StreamStore struct {
	// URL is the log's cluster, written as a cluster "log"; "" keeps the log on cluster
	// "main", the benchmark's broker.
	URL      string
	Stream   string
	Takeover string // "" : the router's default
	// StreamPort is the stream protocol's port of URL's node, 0: the default (5552).
	StreamPort int
}

// StreamRouters runs Routers routers (`router run`) that share one log on a RabbitMQ stream,
// consuming the same source queue and delivering to the same target. The sources and the
// target stay on the benchmark's broker; the log is on it too, or on LogURLs (router i
// reaches the log's cluster through LogURLs[i % len(LogURLs)]). The routers' CPU and memory
// are added up; the CPU of LogBrokers (the processes of the log's own nodes) counts as broker
// CPU.
type StreamRouters struct {
	Bin        string
	Label      string
	Config     RouterConfig
	Routers    int // default 1
	LogURLs    []string
	LogPorts   []int // the stream protocol's port of each of LogURLs (none: the default)
	LogBrokers []int
	// Profiling, when set, takes pprof profiles of every router of every run.
	Profiling *Profiling
}

var _ Side = StreamRouters{}

// Name implements Side.
func (s StreamRouters) Name() string { return s.Label }

// SecondCluster implements Side.
func (StreamRouters) SecondCluster() bool { return false }

// brokerPIDs are the processes of the nodes the side brings along, whose CPU is broker CPU.
func (s StreamRouters) brokerPIDs() []int { return s.LogBrokers }

// Start implements Side: a fresh stream per run, one configuration and process per router.
// Stopping the side deletes the stream and the queues that hold the pair's lease.
func (s StreamRouters) Start(run RunDir) (Running, error) {
	stream := strings.TrimSuffix(run.Topology.SourceQueue, ".in.q") + ".log"
	g := &routerGroup{name: s.Name(), started: time.Now(), exited: make(chan struct{})}
	g.cleanup = func() error { return deleteStreamLog(s.logURL(0, s.Config.URL), stream) }
	// Declared here as a router would, so that the routers start on a stream that exists, as
	// in a deployment, and the runs do not time its creation.
	if err := declareStreamLog(s.logURL(0, s.Config.URL), stream); err != nil {
		return nil, errors.Join(err, g.cleanup())
	}
	for i := range max(1, s.Routers) {
		c := s.Config
		c.Topology = run.Topology
		c.StorePath = ""
		c.Stream = &StreamStore{Stream: stream}
		if len(s.LogURLs) > 0 {
			c.Stream.URL = s.LogURLs[i%len(s.LogURLs)]
			if len(s.LogPorts) == len(s.LogURLs) {
				c.Stream.StreamPort = s.LogPorts[i%len(s.LogPorts)]
			}
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, errors.Join(err, g.Stop(30*time.Second))
		}
		c.AdminAddr = addr
		name := fmt.Sprintf("router-%d", i+1)
		path := filepath.Join(run.Dir, name+".hcl")
		if err := os.WriteFile(path, []byte(c.HCL()), 0o600); err != nil {
			return nil, errors.Join(fmt.Errorf("bench: %w", err), g.Stop(30*time.Second))
		}
		p, err := StartProcess(s.Bin, []string{"run", "-c", path}, filepath.Join(run.Dir, name+".log"))
		if err != nil {
			return nil, errors.Join(err, g.Stop(30*time.Second))
		}
		g.procs = append(g.procs, p)
		if s.Profiling != nil {
			g.profiled = append(g.profiled, s.Profiling.start(p, addr, s.Name()))
		}
		go func() {
			<-p.Exited()
			g.once.Do(func() { close(g.exited) })
		}()
	}
	return g, nil
}

func (s StreamRouters) logURL(i int, main string) string {
	if len(s.LogURLs) == 0 {
		return main
	}
	return s.LogURLs[i%len(s.LogURLs)]
}

// declareStreamLog declares a run's stream and its control stream with the arguments a router
// declares them with by default (config.DefaultRetention, config.DefaultStoreMaxSize).
func declareStreamLog(url, stream string) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return fmt.Errorf("bench: declaring stream %s: %w", stream, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	args := streamlog.StreamArgs(streamlog.Options{MaxAge: config.DefaultRetention, MaxBytes: config.DefaultStoreMaxSize})
	for _, q := range []string{stream, streamlog.ControlStream(stream)} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			return fmt.Errorf("bench: declaring %s: %w", q, err)
		}
	}
	return nil
}

// deleteStreamLog removes a run's stream, its control stream and its pair's lease queue.
func deleteStreamLog(url, stream string) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return fmt.Errorf("bench: deleting stream %s: %w", stream, err)
	}
	defer conn.Close()
	var errs []error
	for _, q := range []string{stream, streamlog.ControlStream(stream), streamlog.LeaseQueue(stream, router.CursorName("all", "out", ""))} {
		ch, err := conn.Channel()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("bench: deleting %s: %w", q, err))
			continue // the failed delete closed the channel
		}
		_ = ch.Close()
	}
	return errors.Join(errs...)
}

// routerGroup is several router processes run as one side: it ends when any of them ends,
// and its CPU and memory are theirs added up (PIDs).
type routerGroup struct {
	name    string
	procs   []*Process
	started time.Time
	exited  chan struct{}
	once    sync.Once
	cleanup func() error
	cleaned bool
	// profiled are the routers whose profiles are taken (StreamRouters.Profiling).
	profiled []*profiledRun
}

var (
	_ Running   = (*routerGroup)(nil)
	_ processes = (*routerGroup)(nil)
)

// PID is the first router's process.
func (g *routerGroup) PID() int {
	if len(g.procs) == 0 {
		return 0
	}
	return g.procs[0].PID()
}

// PIDs are every router's process.
func (g *routerGroup) PIDs() []int {
	pids := make([]int, len(g.procs))
	for i, p := range g.procs {
		pids[i] = p.PID()
	}
	return pids
}

// Started is when the first router started.
func (g *routerGroup) Started() time.Time { return g.started }

// Exited is closed when any router has ended.
func (g *routerGroup) Exited() <-chan struct{} { return g.exited }

// Stop stops the routers side by side (each drains gracefully), then deletes the run's stream.
func (g *routerGroup) Stop(timeout time.Duration) error {
	var profErrs []error
	for _, r := range g.profiled {
		profErrs = append(profErrs, r.collect())
	}
	g.profiled = nil
	errs := make([]error, len(g.procs))
	var wg sync.WaitGroup
	for i, p := range g.procs {
		wg.Go(func() { errs[i] = p.Stop(timeout) })
	}
	wg.Wait()
	if !g.cleaned && g.cleanup != nil {
		g.cleaned = true
		errs = append(errs, g.cleanup())
	}
	return errors.Join(append(errs, profErrs...)...)
}

// withLog adds every router's last output to err.
func (g *routerGroup) withLog(err error) error {
	if err == nil {
		return nil
	}
	for i, p := range g.procs {
		if tail := p.LogTail(1500); tail != "" {
			err = errors.Join(err, fmt.Errorf("last output of %s router %d:\n%s", g.name, i+1, tail))
		}
	}
	return err
}

// processes is a side of several processes whose CPU and memory are added up.
type processes interface{ PIDs() []int }

// readSide samples a running side: its process, or all of them added up.
func readSide(p Running) (ProcSample, error) {
	g, ok := p.(processes)
	if !ok {
		return ReadProc(p.PID())
	}
	var sum ProcSample
	for _, pid := range g.PIDs() {
		s, err := ReadProc(pid)
		if err != nil {
			return sum, err
		}
		sum.CPU += s.CPU
		sum.RSS += s.RSS
		sum.Peak += s.Peak
		sum.Anon += s.Anon
		sum.IOCalls += s.IOCalls
		sum.Switches += s.Switches
		sum.Voluntary += s.Voluntary
	}
	return sum, nil
}
