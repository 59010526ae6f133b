package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is the router binary running `router run -c CONFIG`.
type process struct {
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// startProcess runs the binary on the config at path; admin is the config's admin_addr, polled
// for readiness. A process still running when the test ends is killed.
func startProcess(t testing.TB, path, admin string, flags ...string) *process {
	t.Helper()
	p := &process{out: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(routerBinary(t), append([]string{"run", "-c", path}, flags...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the router: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("router process output (last lines):\n%s", p.out.Tail(60))
		}
	})
	// Generous: a race-built router on a loaded machine, restarted on a stream log of tens of
	// thousands of records, was seen to take over 30s reading the log's tail before it was ready.
	waitReadyOrExit(t, admin, p, 2*time.Minute)
	return p
}

// waitReadyOrExit waits for readiness, failing at once if the process ends first.
func waitReadyOrExit(t testing.TB, admin string, p *process, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("router process exited before it was ready: %v\n%s", p.err, p.out.Tail(40))
		default:
		}
		code, _ := readyz(admin)
		return code == 200
	}, func() string { return "router process at " + admin + " never became ready:\n" + p.out.Tail(40) })
}

// kill sends SIGKILL and waits for the process to end.
func (p *process) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("router process still running 10s after SIGKILL")
	}
}

// terminate sends SIGTERM and returns the exit status (-1 when it died of a signal), failing
// the test if the process is still running after timeout.
func (p *process) terminate(t testing.TB, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("router process still running %v after SIGTERM:\n%s", timeout, p.out.Tail(40))
	}
	var exitErr *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &exitErr):
		return exitErr.ExitCode()
	default:
		t.Fatalf("waiting for the router process: %v", p.err)
		return -1
	}
}

// checkNoRace fails the test if the process, built with the race detector, reported a race.
func (p *process) checkNoRace(t testing.TB) {
	t.Helper()
	if out := p.out.String(); strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the router process reported a data race:\n%s", out)
	}
}

// processConfig is the router block of a config for the binary: a fixed admin address, since
// the process cannot be asked for the one it bound.
func processConfig(admin string) string {
	return "router {\n  admin_addr = " + hclString(admin) + "\n  log_level = \"info\"\n}\n"
}
