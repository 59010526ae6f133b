package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// Message classes: where the checker expects a confirmed message to end up, in every sink.
const (
	classDeliver    = "deliver"    // at the sink (or dead-lettered, where the sink allows it)
	classDeadLetter = "deadletter" // dead-lettered, never delivered
)

// sinkSpec is one target the router delivers to, with its own route of the same name, and the
// queue the checker consumes from it.
type sinkSpec struct {
	name      string
	cluster   string // a cluster block name; "" is the main cluster
	allowDead bool   // the scenario makes this target refuse messages, so dead letters are fair
	filters   []string
	// transforms run after the filters; a guest may write headers only there.
	transforms []string
}

// world is one scenario's run: its broker objects, router process, traffic and checker.
type world struct {
	o        *options
	b        *broker
	scenario string
	id       string
	dir      string

	main      string            // the main cluster's name, unique to the run
	clusters  map[string]string // further cluster blocks: name -> URL
	sinks     []sinkSpec
	modules   string // module blocks
	extra     string // more blocks at the end (the reload scenario's variants)
	retry     string // the routes' retry block
	storePath string
	gen       messageGen
	// sourceDLX makes the source queue dead-letter what the source rejects (a message the
	// client cannot decode) to the dead-letter exchange, where the checker counts it.
	sourceDLX bool
	verify    func(sink string, d *amqp.Delivery) string

	srcX, srcQ, dlqX, dlqQ string
	sinkX, sinkQ           map[string]string

	// routers are the router processes; router is the first, the only one but in scenarios
	// that run several on one shared log (streamLog).
	routers   []*routerProc
	router    *routerProc
	nRouters  int            // how many routers setup starts; 0: one
	streamLog *streamLogSpec // the routers' log is a RabbitMQ stream; nil: each its own bbolt file
	pub       *publisher
	chk       *checker
	cleanups  []func()
	res       *Result
}

func newWorld(o *options, scenario string) (*world, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	dir, err := os.MkdirTemp(o.workDir, "chaos-"+scenario+"-")
	if err != nil {
		return nil, err
	}
	base := "chaos." + scenario + "." + id
	w := &world{o: o, b: &broker{url: o.amqpURL}, scenario: scenario, id: id, dir: dir,
		main: "chaos_" + id, clusters: map[string]string{}, gen: plainMessages,
		retry:     "retry {\n    attempts = 3\n    backoff = \"50ms\"\n    max_backoff = \"500ms\"\n  }",
		storePath: filepath.Join(dir, "data", "router.db"),
		srcX:      base + ".in", srcQ: base + ".source", dlqX: base + ".dlq", dlqQ: base + ".dlq.q",
		sinkX: map[string]string{}, sinkQ: map[string]string{},
		res: &Result{Scenario: scenario, DeadLetterReasons: map[string]int{}}}
	return w, nil
}

// clusterName is the name of a further cluster block of this run.
func (w *world) clusterName(suffix string) string { return w.main + "_" + suffix }

// routerConnNames are the names of the connections (consuming and publishing) the router holds
// to one of its clusters.
func (w *world) routerConnNames(cluster string) []string { return amqpx.ConnectionNames(cluster) }

// connName is the name of the harness's own connections of the given role.
func (w *world) connName(role string) string { return "wasmrouter-chaos/" + w.id + "/" + role }

// proxy starts a TCP proxy to the broker, closed when the world ends, and a cluster block
// through it.
func (w *world) proxy(suffix string) (*tcpproxy.Proxy, string, error) {
	u, err := amqp.ParseURI(w.o.amqpURL)
	if err != nil {
		return nil, "", err
	}
	p, err := tcpproxy.New(fmt.Sprintf("%s:%d", u.Host, u.Port))
	if err != nil {
		return nil, "", err
	}
	w.cleanups = append(w.cleanups, p.Close)
	host, port, _ := strings.Cut(p.Addr(), ":")
	u.Host = host
	u.Port, _ = strconv.Atoi(port)
	name := w.clusterName(suffix)
	w.clusters[name] = u.String()
	return p, name, nil
}

// setup declares the broker objects, writes the config and starts the router and the checker.
// The harness declares the source queue itself, as the router would, so that nothing the
// publisher has confirmed can be unroutable before the router first starts.
func (w *world) setup() error {
	var srcArgs amqp.Table
	if w.sourceDLX {
		srcArgs = amqp.Table{"x-dead-letter-exchange": w.dlqX}
	}
	if err := w.b.declareBound(w.srcX, w.srcQ, srcArgs); err != nil {
		return err
	}
	if err := w.b.declareBound(w.dlqX, w.dlqQ, nil); err != nil {
		return err
	}
	watches := make([]watch, 0, len(w.sinks))
	for _, s := range w.sinks {
		w.sinkX[s.name] = "chaos." + w.scenario + "." + w.id + "." + s.name
		w.sinkQ[s.name] = w.sinkX[s.name] + ".q"
		if err := w.b.declareBound(w.sinkX[s.name], w.sinkQ[s.name], nil); err != nil {
			return err
		}
		watches = append(watches, watch{queue: w.sinkQ[s.name], sink: s.name})
	}
	for i := range max(1, w.nRouters) {
		admin, err := freeAddr()
		if err != nil {
			return err
		}
		name := "router"
		if w.nRouters > 1 {
			name = fmt.Sprintf("router-%d", i+1)
		}
		cfgPath := filepath.Join(w.dir, name+".hcl")
		if err := os.WriteFile(cfgPath, []byte(w.config(i, admin)), 0o600); err != nil {
			return err
		}
		r := &routerProc{name: name, bin: w.o.routerBin, config: cfgPath, logPath: filepath.Join(w.dir, name+".log"), admin: admin}
		if err := r.start(); err != nil {
			return err
		}
		w.routers = append(w.routers, r)
	}
	w.router = w.routers[0]
	for _, r := range w.routers {
		if err := r.waitReady(60 * time.Second); err != nil {
			return err
		}
	}
	w.chk = startChecker(w.b, w.connName("check"), w.dlqQ, watches, w.verify)
	return nil
}

func hclString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// hclList is an HCL list of strings.
func hclList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = hclString(it)
	}
	return strings.Join(q, ", ")
}

// streamLogSpec is a log on a RabbitMQ stream that several routers share: router i reaches
// the stream's cluster through urls[i % len(urls)].
type streamLogSpec struct {
	urls     []string
	ports    []int // the stream protocol's port of each of urls
	stream   string
	takeover string
}

// config is router i's configuration: one source, one route per sink, all dead-lettering to
// one target. Several routers differ only in their admin address and, on a stream log, in the
// node they reach the log's cluster through.
func (w *world) config(i int, admin string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router {\n  admin_addr = %s\n  log_level = \"info\"\n}\n", hclString(admin))
	if s := w.streamLog; s != nil {
		fmt.Fprintf(&b, "store {\n  backend = \"stream\"\n  cluster = %s\n  stream = %s\n  takeover = %s\n",
			hclString(w.clusterName("log")), hclString(s.stream), hclString(s.takeover))
		if len(s.ports) > 0 {
			fmt.Fprintf(&b, "  stream_port = %d\n", s.ports[i%len(s.ports)])
		}
		b.WriteString("}\n")
		fmt.Fprintf(&b, "cluster %s {\n  url = %s\n}\n", hclString(w.clusterName("log")), hclString(s.urls[i%len(s.urls)]))
	} else {
		fmt.Fprintf(&b, "store {\n  path = %s\n}\n", hclString(w.storePath))
	}
	fmt.Fprintf(&b, "cluster %s {\n  url = %s\n}\n", hclString(w.main), hclString(w.o.amqpURL))
	for name, url := range w.clusters {
		fmt.Fprintf(&b, "cluster %s {\n  url = %s\n}\n", hclString(name), hclString(url))
	}
	dlx := ""
	if w.sourceDLX {
		dlx = "  dead_letter_exchange = " + hclString(w.dlqX) + "\n"
	}
	fmt.Fprintf(&b, "source \"in\" {\n  cluster = %s\n  exchange = %s\n  queue = %s\n  bindings = [\"#\"]\n  prefetch = 500\n%s}\n",
		hclString(w.main), hclString(w.srcX), hclString(w.srcQ), dlx)
	fmt.Fprintf(&b, "target \"dlq\" {\n  cluster = %s\n  exchange = %s\n}\n", hclString(w.main), hclString(w.dlqX))
	b.WriteString(w.modules)
	for _, s := range w.sinks {
		cluster := s.cluster
		if cluster == "" {
			cluster = w.main
		}
		fmt.Fprintf(&b, "target %s {\n  cluster = %s\n  exchange = %s\n}\n", hclString(s.name), hclString(cluster), hclString(w.sinkX[s.name]))
		fmt.Fprintf(&b, "route %s {\n  source = \"in\"\n  filters = [%s]\n  transforms = [%s]\n  targets = [%s]\n  dead_letter = \"dlq\"\n  %s\n}\n",
			hclString(s.name), hclList(s.filters), hclList(s.transforms), hclString(s.name), w.retry)
	}
	b.WriteString(w.extra)
	return b.String()
}

// startTraffic starts the publisher on the source exchange.
func (w *world) startTraffic() {
	w.pub = startPublisher(w.b, w.connName("pub"), w.srcX, w.scenario+"-"+w.id, w.o.rate, w.gen)
}

// teardown stops everything the world started and deletes its broker objects.
func (w *world) teardown() {
	if w.chk != nil {
		w.chk.stop()
	}
	for _, r := range w.routers {
		if r.running() {
			_ = r.kill()
		}
	}
	for i := len(w.cleanups) - 1; i >= 0; i-- {
		w.cleanups[i]()
	}
	exchanges := []string{w.srcX, w.dlqX}
	queues := []string{w.srcQ, w.dlqQ}
	for _, s := range w.sinks {
		exchanges = append(exchanges, w.sinkX[s.name])
		queues = append(queues, w.sinkQ[s.name])
	}
	if err := w.b.deleteAll(exchanges, queues); err != nil {
		w.res.Notes = append(w.res.Notes, "cleanup: "+err.Error())
	}
	if !w.o.keep && w.res.Passed() {
		_ = os.RemoveAll(w.dir)
	}
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
