package rabbitnode

import (
	"errors"
	"os"
	"sync"
	"testing"
)

// Start boots a node for one test, in a t.TempDir, and stops it when the test ends. It skips
// the test under -short and fails it when the node does not boot.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a RabbitMQ node (skipped with -short)")
	}
	opts.Dir = t.TempDir()
	n, err := Launch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// Shared is one node for all the tests of a package: the first test that asks for it boots
// it, and TestMain stops it after m.Run:
//
//	var second = &rabbitnode.Shared{Options: rabbitnode.Options{TLS: true}}
//
//	func TestMain(m *testing.M) {
//		flag.Parse()
//		code := m.Run()
//		if err := second.Stop(); err != nil { ... }
//		os.Exit(code)
//	}
type Shared struct {
	Options Options

	once sync.Once
	node *Node
	dir  string
	err  error
}

// Node returns the shared node, booting it on first use. It skips the test under -short and
// fails it when the node did not boot (every later caller too, without another attempt).
func (s *Shared) Node(t testing.TB) *Node {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a RabbitMQ node (skipped with -short)")
	}
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "rabbitnode-"); s.err != nil {
			return
		}
		opts := s.Options
		opts.Dir = s.dir
		s.node, s.err = Launch(opts)
	})
	if s.err != nil {
		t.Fatalf("shared RabbitMQ node: %v", s.err)
	}
	return s.node
}

// Stop stops the shared node, if one was started, and removes its directory.
func (s *Shared) Stop() error {
	var err error
	if s.node != nil {
		err = s.node.Stop()
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}
