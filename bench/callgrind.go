package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Callgrind runs the process sides under valgrind's callgrind tool and counts the instructions
// they execute per message. Unlike CPU time, an instruction count does not grow when other
// processes share the cores (no waits, no cache thrashing by neighbours), so two builds or two
// sides can be compared on a busy machine. The program runs 30-100 times slower under
// valgrind, with its threads serialised, so the count says what the work costs, not how the
// process batches at full speed: read context switches and system calls from a run without it.
//
// Counting starts once the target holds a fifth of the messages (start-up, connections and
// the first batches left out) and ends when it holds them all; the count is divided by the
// messages delivered in between. Go's asynchronous preemption is turned off in the process
// (GODEBUG=asyncpreemptoff=1): callgrind does not survive its signals. For the same reason the
// process is killed at the end instead of being asked to stop. The process runs with
// GOMAXPROCS=1: valgrind runs one thread at a time anyway, and with more Ps the Go scheduler's
// threads spin looking for work, instructions whose number followed the load on the machine.
type Callgrind struct {
	Dir   string // where the callgrind output files go, SIDE-N.callgrind.out[.K]
	count *atomic.Int64
}

// NewCallgrind checks that valgrind and callgrind_control are installed and returns counting
// into dir (created).
func NewCallgrind(dir string) (*Callgrind, error) {
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("bench: instruction counts need %s (Debian package valgrind): %w", tool, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &Callgrind{Dir: dir, count: new(atomic.Int64)}, nil
}

// wrap returns the command line that runs bin with args under callgrind, the environment it
// needs, and the output file.
func (c *Callgrind) wrap(side, bin string, args []string) (string, []string, []string, string) {
	out, _ := filepath.Abs(filepath.Join(c.Dir, fmt.Sprintf("%s-%d.callgrind.out", side, c.count.Add(1))))
	vargs := append([]string{"--tool=callgrind", "--callgrind-out-file=" + out, bin}, args...)
	return "valgrind", vargs, []string{"GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1"}, out
}

// startCounted is StartProcess, under callgrind when c is not nil.
func startCounted(c *Callgrind, side, bin string, args []string, logPath string, env ...string) (*Process, error) {
	if c == nil {
		return StartProcess(bin, args, logPath, env...)
	}
	vbin, vargs, venv, out := c.wrap(side, bin, args)
	p, err := StartProcess(vbin, vargs, logPath, append(env, venv...)...)
	if p != nil {
		p.callgrindOut = out
	}
	return p, err
}

// instructionCounter is a side's process run under callgrind.
type instructionCounter interface {
	counted() bool
	zeroInstructions() error
	dumpInstructions() (int64, error)
}

// countedRouter is a router run under callgrind. A garbage collection costs the router tens of
// millions of instructions (it marks the events held in memory), and one happens every few
// thousand events: whether a window of a few thousand messages holds one more or one fewer
// moved the count by 10-20%. So the count starts right after a forced collection and ends with
// one, which settles the collection work the window's allocations caused. The collection is
// forced through the admin API (/debug/pprof/heap?gc=1, which also writes a heap profile: a
// constant cost, the same in every run).
type countedRouter struct {
	*Process
	admin string
}

func (r *countedRouter) collect() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+r.admin+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: forcing a collection: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: forcing a collection: %s", resp.Status)
	}
	return nil
}

func (r *countedRouter) zeroInstructions() error {
	if err := r.collect(); err != nil {
		return err
	}
	return r.Process.zeroInstructions()
}

func (r *countedRouter) dumpInstructions() (int64, error) {
	if err := r.collect(); err != nil {
		return 0, err
	}
	return r.Process.dumpInstructions()
}

func (p *Process) counted() bool { return p.callgrindOut != "" }

// zeroInstructions starts the count afresh.
func (p *Process) zeroInstructions() error {
	return callgrindControl("-z", p.PID())
}

// dumpInstructions returns the instructions executed since the last zero.
func (p *Process) dumpInstructions() (int64, error) {
	if err := callgrindControl("-d", p.PID()); err != nil {
		return 0, err
	}
	// Each dump is written to the output file with a numbered suffix: read the latest.
	matches, _ := filepath.Glob(p.callgrindOut + ".*")
	best, latest := -1, ""
	for _, m := range matches {
		if k, err := strconv.Atoi(strings.TrimPrefix(m, p.callgrindOut+".")); err == nil && k > best {
			best, latest = k, m
		}
	}
	if latest == "" {
		return 0, fmt.Errorf("bench: no callgrind dump next to %s", p.callgrindOut)
	}
	return callgrindTotal(latest)
}

func callgrindControl(op string, pid int) error {
	out, err := exec.Command("callgrind_control", op, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bench: callgrind_control %s %d: %w: %s", op, pid, err, out)
	}
	return nil
}

// callgrindTotal reads the instruction total ("summary:" or "totals:" line) of a callgrind
// output file.
func callgrindTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, prefix := range []string{"summary:", "totals:"} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				fields := strings.Fields(v)
				if len(fields) == 0 {
					continue
				}
				return strconv.ParseInt(fields[0], 10, 64)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", path, err)
	}
	return 0, errors.New("bench: no instruction total in " + path)
}

// kill ends a process run under callgrind (SIGTERM would crash the tool, see Callgrind).
func (p *Process) kill() error {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	return nil
}
