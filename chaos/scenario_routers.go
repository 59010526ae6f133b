package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
	"github.com/wasmrouter/wasmrouter/store/streamlog"
)

// routersScenario runs three routers on one log, a stream on a private three-node RabbitMQ
// cluster (sources and targets stay on the main broker): routers are killed with SIGKILL at
// random and restarted, and once the node leading the stream stops and comes back. Each
// router reaches the log's cluster through its own node, so the router on the stopped node
// loses its log while the node is away.
func routersScenario() *scenario {
	var cluster *rabbitnode.Cluster
	return &scenario{
		name:  "routers",
		about: "three routers on one stream of a private three-node cluster: routers killed with SIGKILL at random, the stream's leading node stopped and restarted",
		prepare: func(w *world) error {
			var err error
			cluster, err = rabbitnode.LaunchCluster(rabbitnode.ClusterOptions{Size: 3, Dir: w.dir})
			if errors.Is(err, rabbitnode.ErrNoRabbitMQ) {
				return fmt.Errorf("%w: %v", errSkip, err)
			}
			if err != nil {
				return fmt.Errorf("starting a three-node cluster: %w", err)
			}
			w.cleanups = append(w.cleanups, func() {
				if err := cluster.Stop(); err != nil {
					w.res.note("stopping the cluster: %v", err)
				}
			})
			w.nRouters = 3
			w.streamLog = &streamLogSpec{urls: cluster.URLs(), ports: cluster.StreamPorts(), stream: "chaos.routers." + w.id, takeover: "5s"}
			w.sinks = []sinkSpec{{name: "a"}, {name: "b"}}
			return nil
		},
		faults: func(ctx context.Context, w *world, rng *rand.Rand) error {
			w.res.FaultKind = "router SIGKILLs, each followed by a restart, and one restart of the stream's leading node"
			rngK := rand.New(rand.NewPCG(rng.Uint64(), 1))
			rngN := rand.New(rand.NewPCG(rng.Uint64(), 2))
			var wg sync.WaitGroup
			var kills int
			var errK, errN error
			killed := map[string]int{}
			wg.Go(func() {
				kills, errK = every(ctx, rngK, time.Second, 5*time.Second, func() error {
					r := w.routers[rngK.IntN(len(w.routers))]
					killed[r.name]++
					if err := r.kill(); err != nil {
						return err
					}
					return r.start()
				})
			})
			wg.Go(func() {
				// One node restart, a quarter to a half into the traffic.
				d := time.Until(deadlineOf(ctx))
				if !sleepCtx(ctx, d/4+time.Duration(rngN.Int64N(int64(d/4)+1))) {
					return
				}
				errN = restartLeader(context.WithoutCancel(ctx), w, cluster)
			})
			wg.Wait()
			w.res.Faults = kills + 1
			names := make([]string, 0, len(killed))
			for _, r := range w.routers {
				names = append(names, fmt.Sprintf("%s %d", r.name, killed[r.name]))
			}
			w.res.note("SIGKILLs: %s", strings.Join(names, ", "))
			return errors.Join(errK, errN)
		},
		afterStop: func(w *world) { checkStreamOnce(w, cluster) },
	}
}

// deadlineOf is ctx's deadline, or now without one.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now()
}

// restartLeader stops the node that leads the log's stream, keeps it down a few seconds while
// traffic flows, and starts it again.
func restartLeader(ctx context.Context, w *world, c *rabbitnode.Cluster) error {
	leader := c.Nodes[0]
	if name, err := queueLeader(c.Nodes[0], w.streamLog.stream); err == nil {
		for _, n := range c.Nodes {
			if n.Name() == name {
				leader = n
			}
		}
	} else {
		w.res.note("the stream's leader not known (%v); stopping %s", err, leader.Name())
	}
	start := time.Now()
	if err := leader.Stop(); err != nil {
		return fmt.Errorf("stopping %s: %w", leader.Name(), err)
	}
	sleepCtx(ctx, 5*time.Second)
	if err := leader.Restart(); err != nil {
		return fmt.Errorf("restarting %s: %w", leader.Name(), err)
	}
	after := "unknown"
	if name, err := queueLeader(leader, w.streamLog.stream); err == nil {
		after = name
	}
	w.res.note("node %s (the stream's leader) stopped and back after %v; the stream is now led by %s", leader.Name(), Duration(time.Since(start)), after)
	return nil
}

// queueLeader is the node leading queue (a stream or a quorum queue), as n reports it.
func queueLeader(n *rabbitnode.Node, queue string) (string, error) {
	out, err := n.Ctl("list_queues", "name", "leader", "--no-table-headers", "--quiet")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == queue {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("queue %s not listed", queue)
}

// checkStreamOnce reads the whole stream after the routers stopped and counts the messages
// recorded more than once. A redelivery is recognised only once the router that got it has
// read the first copy from the stream, so a router killed with appends on their way can leave
// a second copy written by the router that got the redelivery; the note says how many.
func checkStreamOnce(w *world, c *rabbitnode.Cluster) {
	conn, err := amqp.DialConfig(c.Nodes[0].URL(), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		w.res.violate("reading the stream: %v", err)
		return
	}
	defer conn.Close()
	l, err := streamlog.Open(conn, streamlog.Options{Stream: w.streamLog.stream})
	if err != nil {
		w.res.violate("opening the stream: %v", err)
		return
	}
	defer l.Close()
	seen := map[string]int{}
	if _, err := l.Scan(1, 0, nil, func(ev *event.Event) bool {
		seen[ev.Props.MessageID]++
		return true
	}); err != nil {
		w.res.violate("reading the stream: %v", err)
		return
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	w.res.note("the stream holds %d events, %d of them recorded more than once", len(seen), twice)
}
