package rabbitnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ClusterOptions configure a cluster. Zero values take the defaults.
type ClusterOptions struct {
	// Size is the number of nodes, default 3.
	Size int
	// Dir is where LaunchCluster keeps the nodes' files; it must exist. StartCluster uses a
	// t.TempDir.
	Dir string
	// StartTimeout bounds each node's boot, default 3m.
	StartTimeout time.Duration
}

// Cluster is a RabbitMQ cluster of private nodes: they share an Erlang cookie of their own and
// the second and later nodes joined the first with rabbitmqctl join_cluster. The machine's
// broker is never part of it.
type Cluster struct {
	Nodes []*Node
}

// LaunchCluster boots opts.Size nodes in opts.Dir and joins them into one cluster.
func LaunchCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("rabbitnode: ClusterOptions.Dir is required")
	}
	if opts.Size <= 0 {
		opts.Size = 3
	}
	cookie := strings.ToUpper(randomHex(16))
	c := &Cluster{Nodes: make([]*Node, opts.Size)}
	errs := make([]error, opts.Size)
	// The nodes boot side by side: a boot mostly waits, and three in a row take a minute.
	var wg sync.WaitGroup
	for i := range c.Nodes {
		dir := filepath.Join(opts.Dir, "n"+strconv.Itoa(i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Nodes[i], errs[i] = Launch(Options{Dir: dir, Cookie: cookie, StartTimeout: opts.StartTimeout})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = c.Stop()
		return nil, err
	}
	first := c.Nodes[0].Name()
	for _, n := range c.Nodes[1:] {
		if err := n.join(first); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	if err := c.awaitMembers(); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// join makes the node a member of the cluster of the node named first.
func (n *Node) join(first string) error {
	for _, args := range [][]string{{"stop_app"}, {"join_cluster", first}, {"start_app"}} {
		if _, err := n.Ctl(args...); err != nil {
			return err
		}
	}
	return nil
}

// awaitMembers checks that every node sees every other one as running.
func (c *Cluster) awaitMembers() error {
	for _, n := range c.Nodes {
		out, err := n.Ctl("cluster_status", "--formatter", "json")
		if err != nil {
			return err
		}
		for _, other := range c.Nodes {
			if !strings.Contains(out, `"`+other.Name()+`"`) {
				return fmt.Errorf("rabbitnode: %s does not list %s as a member:\n%s", n.Name(), other.Name(), out)
			}
		}
	}
	return nil
}

// URLs are the nodes' AMQP URLs, in node order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// StreamPorts are the nodes' stream protocol ports, in node order.
func (c *Cluster) StreamPorts() []int {
	ports := make([]int, len(c.Nodes))
	for i, n := range c.Nodes {
		ports[i] = n.StreamPort()
	}
	return ports
}

// Stop stops every node that runs, the later ones first (the first node is the one the others
// joined). Idempotent.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		if c.Nodes[i] != nil {
			errs = append(errs, c.Nodes[i].Stop())
		}
	}
	return errors.Join(errs...)
}

// StartCluster boots a cluster of size nodes for one test, in a t.TempDir, and stops it when
// the test ends. It skips the test under -short and fails it when the cluster does not form.
func StartCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a RabbitMQ cluster (skipped with -short)")
	}
	c, err := LaunchCluster(ClusterOptions{Size: size, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}
