package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wasmrouter/wasmrouter/bench"
)

// tmpfsMagic is the statfs type of tmpfs, where fsync costs nothing.
const tmpfsMagic = 0x01021994

// makeEnv connects to the broker (and the second cluster when a side needs it), finds the
// broker's process and prepares the working directory.
func makeEnv(o options, url string, sides []bench.Side, stderr io.Writer) (*bench.Env, func(), error) {
	b, err := bench.Dial(url)
	if err != nil {
		return nil, nil, err
	}
	env := &bench.Env{Broker: b, WorkDir: o.workDir, Poll: o.poll, QuietWait: o.quietWait, Progress: stderr}
	closeAll := func() {
		b.Close()
		if env.Second != nil {
			env.Second.Close()
		}
	}
	for _, s := range sides {
		if s.SecondCluster() && env.Second == nil {
			if env.Second, err = bench.Dial(o.drURL); err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("second cluster: %w", err)
			}
		}
	}
	port, err := bench.BrokerPort(url)
	if err == nil {
		env.BrokerPID, err = bench.FindBroker(port)
	}
	if err != nil {
		fmt.Fprintf(stderr, "e2e: %v: broker CPU will not be reported (is the broker on another machine?)\n", err)
	}
	if env.WorkDir == "" {
		env.WorkDir = os.TempDir()
	}
	if err := os.MkdirAll(env.WorkDir, 0o755); err != nil {
		closeAll()
		return nil, nil, err
	}
	var st syscall.Statfs_t
	if syscall.Statfs(env.WorkDir, &st) == nil && st.Type == tmpfsMagic {
		fmt.Fprintf(stderr, "e2e: warning: %s is a tmpfs: the router's fsync costs nothing there; use -workdir on a disk\n", env.WorkDir)
	}
	return env, closeAll, nil
}

// absPath makes a module path absolute: the router resolves relative paths against its
// configuration file, which lives in a run's private directory.
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}
