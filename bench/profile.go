package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Profiling takes pprof profiles of a router side through its admin API (/debug/pprof): a CPU
// profile of the first Seconds of each run, and at the end of the run, before the router
// stops, its allocation profile (every allocation since start) and heap profile, and its
// metrics (/metrics: the log's commits, their durations and group commit waits among them).
type Profiling struct {
	Dir     string        // where the profiles go, named SIDE-N.cpu.pprof, SIDE-N.allocs.pprof, SIDE-N.heap.pprof, and SIDE-N.metrics.txt
	Seconds int           // CPU profile length; keep it below a run's length
	count   *atomic.Int64 // numbers the runs
}

// NewProfiling returns profiling into dir (created) with CPU profiles of seconds.
func NewProfiling(dir string, seconds int) (*Profiling, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &Profiling{Dir: dir, Seconds: seconds, count: new(atomic.Int64)}, nil
}

// profiledRun is a router process whose profiles are being taken.
type profiledRun struct {
	*Process
	admin  string // base URL of its admin API
	prefix string // path prefix of its profile files
	cpu    chan error
}

func (p *Profiling) start(proc *Process, adminAddr, side string) *profiledRun {
	r := &profiledRun{Process: proc, admin: "http://" + adminAddr,
		prefix: filepath.Join(p.Dir, fmt.Sprintf("%s-%d", side, p.count.Add(1))), cpu: make(chan error, 1)}
	go func() {
		r.cpu <- r.fetchWhenUp(fmt.Sprintf("/debug/pprof/profile?seconds=%d", p.Seconds), r.prefix+".cpu.pprof",
			time.Duration(p.Seconds)*time.Second+time.Minute)
	}()
	return r
}

// fetchWhenUp fetches path into file, retrying while the admin API is not listening yet.
func (r *profiledRun) fetchWhenUp(path, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := fetchTo(ctx, r.admin+path, file)
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-r.Exited():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func fetchTo(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// Stop waits for the CPU profile, takes the allocation and heap profiles, then stops the
// router.
func (r *profiledRun) Stop(timeout time.Duration) error {
	return errors.Join(r.collect(), r.Process.Stop(timeout))
}

// collect waits for the CPU profile and takes the allocation and heap profiles and the metrics.
func (r *profiledRun) collect() error {
	var errs []error
	if err := <-r.cpu; err != nil {
		errs = append(errs, fmt.Errorf("bench: CPU profile: %w", err))
	}
	r.cpu <- nil // a second Stop does not wait
	for _, name := range []string{"allocs", "heap"} {
		if err := r.fetchWhenUp("/debug/pprof/"+name, r.prefix+"."+name+".pprof", 30*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("bench: %s profile: %w", name, err))
		}
	}
	if err := r.fetchWhenUp("/metrics", r.prefix+".metrics.txt", 30*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("bench: metrics: %w", err))
	}
	return errors.Join(errs...)
}
