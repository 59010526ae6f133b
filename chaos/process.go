package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// routerProc is the router binary running `router run -c CONFIG`, restarted as often as a
// scenario wants; every run appends to the same log file.
type routerProc struct {
	name                        string // "router", or "router-N" when several run
	bin, config, logPath, admin string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	expected bool // the harness ended this run on purpose
	starts   int
	crashes  []string // runs that ended without the harness asking
}

var errNotReady = errors.New("router not ready")

// start runs the binary once more.
func (r *routerProc) start() error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, "run", "-c", r.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", r.bin, err)
	}
	exited := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.exited, r.expected = cmd, exited, false
	r.starts++
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		r.mu.Lock()
		r.exitErr = err
		if !r.expected {
			r.crashes = append(r.crashes, fmt.Sprintf("run %d ended by itself: %v", r.starts, err))
		}
		r.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (r *routerProc) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *routerProc) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// signal sends sig to the running process and waits up to timeout for it to end.
func (r *routerProc) signal(sig syscall.Signal, timeout time.Duration) error {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.expected = true
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%v: %w", sig, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("router still running %v after %v; killed", timeout, sig)
	}
}

// hangup sends SIGHUP (a reload) to the running process; it keeps running.
func (r *routerProc) hangup() error {
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	return cmd.Process.Signal(syscall.SIGHUP)
}

func (r *routerProc) kill() error { return r.signal(syscall.SIGKILL, 10*time.Second) }

// stop asks for a graceful stop and reports a non-zero exit status.
func (r *routerProc) stop() error {
	if err := r.signal(syscall.SIGTERM, 60*time.Second); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exitErr != nil {
		return fmt.Errorf("router exited after SIGTERM: %w", r.exitErr)
	}
	return nil
}

// waitReady polls /readyz until it answers 200, the process ends, or timeout passes.
func (r *routerProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if !r.running() {
			return fmt.Errorf("router exited before it was ready:\n%s", r.tail(20))
		}
		code, body, _ := httpGet(r.admin, "/readyz")
		if code == http.StatusOK {
			return nil
		}
		last = string(body)
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%w after %v: %s\n%s", errNotReady, timeout, last, r.tail(20))
}

// tail is the last n lines of the router's log.
func (r *routerProc) tail(n int) string {
	b, _ := os.ReadFile(r.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logCount counts the log lines containing s.
func (r *routerProc) logCount(s string) int {
	b, _ := os.ReadFile(r.logPath)
	return bytes.Count(b, []byte(s))
}

// cpuTicks is the process's user plus system time in clock ticks, from /proc.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, nil
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

func httpGet(admin, path string) (int, []byte, error) {
	resp, err := httpClient.Get("http://" + admin + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// status is the part of /api/v1/status the harness reads.
type status struct {
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason"`
	Streams []struct {
		Route    string `json:"route"`
		Target   string `json:"target"`
		Position uint64 `json:"position"`
		Lag      uint64 `json:"lag"`
		// HeldHere: this router delivers the pair. On a log several routers share (Router is
		// set) a position is current only there.
		HeldHere bool `json:"held_here"`
	} `json:"streams"`
	Router string `json:"router"`
	Store  struct {
		SizeBytes int64  `json:"size_bytes"`
		LastSeq   uint64 `json:"last_seq"`
		Full      bool   `json:"full"`
	} `json:"store"`
}

func getStatus(admin string) (status, error) {
	var st status
	code, body, err := httpGet(admin, "/api/v1/status")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET /api/v1/status: %d %s", code, body)
	}
	return st, json.Unmarshal(body, &st)
}

// settled reports whether every stream's position is the log's last seq (on a shared log, every
// stream of the pairs this router delivers).
func (st status) settled() bool {
	for _, s := range st.Streams {
		if st.Router != "" && !s.HeldHere {
			continue
		}
		if s.Position != st.Store.LastSeq {
			return false
		}
	}
	return true
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
