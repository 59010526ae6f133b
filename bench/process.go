package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a consumer under test running as a process of its own, so that /proc accounts
// its CPU and memory apart from the benchmark's.
type Process struct {
	started time.Time
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	exited  chan struct{}
	err     error // the exit status, set before exited is closed
	// callgrindOut is the callgrind output file when the process runs under callgrind.
	callgrindOut string
}

// StartProcess runs bin with args and the benchmark's environment plus env, its stdout and
// stderr going to logPath.
func StartProcess(bin string, args []string, logPath string, env ...string) (*Process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	p := &Process{cmd: cmd, logPath: logPath, log: log, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("bench: start %s: %w", bin, err)
	}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// Running is a side while it runs.
type Running interface {
	// PID is the process whose CPU and memory are measured; 0 when the side runs inside the
	// broker (the Shovel), where they are part of the broker's.
	PID() int
	// Started is when the side started: its clock starts there.
	Started() time.Time
	// Exited is closed when the side has ended.
	Exited() <-chan struct{}
	// Stop ends the side, waiting up to timeout.
	Stop(timeout time.Duration) error
	// withLog adds what the side logged to err.
	withLog(err error) error
}

var _ Running = (*Process)(nil)

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop asks the process to stop (SIGTERM: the router drains gracefully) and waits up to
// timeout before killing it. It returns the process's exit error, if any.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	if p.counted() {
		return p.kill()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("bench: %s did not stop within %s after SIGTERM; killed", p.cmd.Path, timeout)
	}
}

// LogTail returns up to the last n bytes of the process's output, for error reports.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// withLog appends the process's last output to err.
func (p *Process) withLog(err error) error {
	if err == nil {
		return nil
	}
	tail := p.LogTail(2000)
	if tail == "" {
		return err
	}
	return errors.Join(err, fmt.Errorf("last output of %s:\n%s", p.cmd.Path, tail))
}
