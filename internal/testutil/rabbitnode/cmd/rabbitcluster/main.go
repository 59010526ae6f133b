// Command rabbitcluster starts a local RabbitMQ cluster of private nodes (their own names,
// ports, data directories and Erlang cookie; the machine's broker is left alone), prints how to
// reach it and stops it on Ctrl-C or SIGTERM, removing its files. `make cluster` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
)

func main() {
	size := flag.Int("size", 3, "number of nodes")
	keep := flag.Bool("keep", false, "keep the nodes' directory after stopping")
	flag.Parse()
	dir, err := os.MkdirTemp("", "rabbitcluster-")
	if err != nil {
		fail(err)
	}
	fmt.Printf("starting %d nodes in %s ...\n", *size, dir)
	start := time.Now()
	c, err := rabbitnode.LaunchCluster(rabbitnode.ClusterOptions{Size: *size, Dir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		fail(err)
	}
	fmt.Printf("cluster formed in %s\n", time.Since(start).Round(time.Second))
	for _, n := range c.Nodes {
		fmt.Printf("  %s  %s  (rabbitmqctl: HOME=%s/home rabbitmqctl -n %s ...)\n", n.Name(), n.URL(), n.Dir(), n.Name())
	}
	fmt.Printf("AMQP_URLS=%s\nCtrl-C stops the cluster.\n", strings.Join(c.URLs(), ","))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Println("stopping ...")
	err = c.Stop()
	if !*keep {
		_ = os.RemoveAll(dir)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rabbitcluster:", err)
	os.Exit(1)
}
