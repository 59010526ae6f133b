package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/bench"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
)

// logCluster is where router-stream-2 keeps its log: the nodes' URLs and, when they run on
// this machine, their processes (their CPU is broker CPU).
type logCluster struct {
	urls  []string
	ports []int // the nodes' stream protocol ports; none for -stream-cluster (5552)
	pids  []int
}

// streamCluster finds or starts the cluster for router-stream-2: the -stream-cluster nodes,
// or a private three-node cluster in the working directory, stopped by the returned func.
// Without that side it does nothing.
func streamCluster(o options, stderr io.Writer) (logCluster, func(), error) {
	var lc logCluster
	none := func() {}
	wanted := false
	for _, s := range strings.Split(o.sides, ",") {
		wanted = wanted || strings.TrimSpace(s) == "router-stream-2"
	}
	if !wanted {
		return lc, none, nil
	}
	stop := none
	if o.streamCluster != "" {
		lc.urls = strings.Split(o.streamCluster, ",")
	} else {
		if o.workDir != "" {
			if err := os.MkdirAll(o.workDir, 0o755); err != nil {
				return lc, none, err
			}
		}
		dir, err := os.MkdirTemp(o.workDir, "stream-cluster-")
		if err == nil {
			// The nodes' files are named from it, also from within their own directories.
			dir, err = filepath.Abs(dir)
		}
		if err != nil {
			return lc, none, err
		}
		fmt.Fprintf(stderr, "router-stream-2: starting a private three-node cluster in %s\n", dir)
		start := time.Now()
		c, err := rabbitnode.LaunchCluster(rabbitnode.ClusterOptions{Size: 3, Dir: dir})
		if err != nil {
			_ = os.RemoveAll(dir)
			return lc, none, fmt.Errorf("router-stream-2: starting a three-node cluster: %w", err)
		}
		fmt.Fprintf(stderr, "router-stream-2: cluster formed in %s\n", time.Since(start).Round(time.Second))
		lc.urls, lc.ports = c.URLs(), c.StreamPorts()
		stop = func() {
			if err := c.Stop(); err != nil {
				fmt.Fprintf(stderr, "router-stream-2: stopping the cluster: %v\n", err)
			}
			_ = os.RemoveAll(dir)
		}
	}
	for _, u := range lc.urls {
		port, err := bench.BrokerPort(u)
		if err == nil {
			var pid int
			if pid, err = bench.FindBroker(port); err == nil {
				lc.pids = append(lc.pids, pid)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "router-stream-2: %v: that node's CPU will not be reported\n", err)
		}
	}
	return lc, stop, nil
}
