package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// MemorySpec is the memory benchmark: one router process taken through three phases while
// its resident set is sampled.
//
//  1. run: N messages pre-filled on the source, the router started, until the target holds N;
//  2. outage: the target's connection cut (a proxy between router and broker), N more
//     messages published and logged, the backlog then delivered once the connection is back;
//  3. replay: every logged event (2N) replayed to the target through the admin API.
//
// The target queue is purged between phases so the broker does not hold 4N messages.
type MemorySpec struct {
	N       int
	Size    int
	Every   time.Duration // sampling interval; default 100ms
	Timeout time.Duration // for each phase
	// ProfileDir, if set, receives the router's heap profile (/debug/pprof/heap) and its
	// runtime statistics (the same with debug=1: MemStats, NextGC) as each phase reaches a new
	// peak of its resident set, at most every 2 s: PHASE-peak.pb.gz and PHASE-peak.txt are the
	// ones taken at or last before the phase's peak (a profile is of the live heap at the last
	// collection), so that what holds the memory at the peaks can be compared between runs.
	ProfileDir string
	// RunOnly stops after the run phase (quicker comparisons of the phase with the highest
	// peak).
	RunOnly bool
}

// MemSample is one reading of the router's memory: its resident set, and the parts of it
// that are anonymous (heap, stacks), the executable's mapped pages and the log file's.
type MemSample struct {
	At                  time.Duration // since the router started
	RSS, Anon, Exe, Log int64
	Phase               int // index into MemoryResult.Phases
}

// MemPhase is one phase's span and peak.
type MemPhase struct {
	Name       string
	Start, End time.Duration
	Peak       int64 // highest RSS sampled in the phase
	// The highest of each part sampled in the phase (not necessarily at the same time).
	PeakAnon, PeakExe, PeakLog int64
	Events                     int // events the phase moved
	Description                string
}

// MemoryResult is what the benchmark measured.
type MemoryResult struct {
	Samples []MemSample
	Phases  []MemPhase
	VmHWM   int64 // the kernel's peak RSS of the process, which sampling may miss
}

// Memory runs the memory benchmark on the router side r (its configuration's target is
// pointed at a proxy of the broker).
func (e *Env) Memory(ctx context.Context, r Router, spec MemorySpec) (res MemoryResult, err error) {
	if spec.Every <= 0 {
		spec.Every = 100 * time.Millisecond
	}
	run, cleanup, err := e.prepare(r)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, cleanup()) }()
	t := run.Topology

	brokerURL, err := url.Parse(e.Broker.URL)
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	proxy, err := tcpproxy.New(brokerURL.Host)
	if err != nil {
		return res, fmt.Errorf("bench: proxy: %w", err)
	}
	defer proxy.Close()
	viaProxy := *brokerURL
	viaProxy.Host = proxy.Addr()
	r.Config.TargetURL = viaProxy.String()
	if r.Config.AdminAddr, err = freeLoopbackAddr(); err != nil {
		return res, err
	}
	admin := "http://" + r.Config.AdminAddr

	e.logf("memory: filling %s with %d messages", t.SourceQueue, spec.N)
	if err := e.Broker.Prefill(ctx, t.SourceExchange, t.SourceQueue, spec.N, spec.Size); err != nil {
		return res, err
	}
	e.waitQuiet(ctx)
	p, err := r.Start(run)
	if err != nil {
		return res, err
	}
	defer func() {
		if stopErr := p.Stop(30 * time.Second); stopErr != nil {
			err = errors.Join(err, p.withLog(fmt.Errorf("bench: stopping the router: %w", stopErr)))
		}
	}()

	s := &memSampler{pid: p.PID(), start: p.Started(), every: spec.Every, stop: make(chan struct{}), admin: admin, profileDir: spec.ProfileDir, saved: map[string]bool{}}
	if s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
	}
	s.wg.Add(1)
	go s.run()
	defer s.halt()

	phase := func(name, desc string, events int, fn func(ctx context.Context) error) error {
		pctx, cancel := context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
		s.begin(name, desc, events)
		e.logf("memory: phase %s", name)
		err := fn(pctx)
		s.end()
		if err != nil {
			return p.withLog(fmt.Errorf("bench: memory phase %s: %w", name, err))
		}
		return e.Broker.Purge(t.TargetQueue)
	}
	untilTarget := func(ctx context.Context, n int) error {
		_, _, err := e.Broker.WaitQueue(ctx, t.TargetQueue, e.Poll, p.Exited(), func(q QueueState) bool { return q.Messages >= n })
		return err
	}

	err = phase("run", fmt.Sprintf("%d pre-filled messages moved", spec.N), spec.N, func(ctx context.Context) error {
		return untilTarget(ctx, spec.N)
	})
	if err == nil && !spec.RunOnly {
		err = phase("outage", fmt.Sprintf("target cut, %d messages logged, then delivered", spec.N), spec.N, func(ctx context.Context) error {
			proxy.Cut()
			restored := false
			defer func() {
				if !restored {
					proxy.Restore()
				}
			}()
			if err := e.Broker.Prefill(ctx, t.SourceExchange, t.SourceQueue, spec.N, spec.Size); err != nil {
				return err
			}
			if err := waitStatus(ctx, admin, e.Poll, func(st memStatus) bool { return st.Store.LastSeq >= uint64(2*spec.N) }); err != nil {
				return fmt.Errorf("logging the backlog: %w", err)
			}
			s.mark("backlog logged")
			proxy.Restore()
			restored = true
			return untilTarget(ctx, spec.N)
		})
	}
	if err == nil && !spec.RunOnly {
		err = phase("replay", fmt.Sprintf("all %d logged events replayed", 2*spec.N), 2*spec.N, func(ctx context.Context) error {
			if err := postJSON(ctx, admin+"/api/v1/replay", `{}`); err != nil {
				return err
			}
			return untilTarget(ctx, 2*spec.N)
		})
	}
	s.halt()
	res.Samples, res.Phases = s.samples, s.phases
	if final, perr := ReadProc(p.PID()); perr == nil {
		res.VmHWM = final.Peak
	}
	return res, err
}

// memSampler reads the process's memory every interval and labels each sample with the
// current phase.
type memSampler struct {
	pid      int
	start    time.Time
	every    time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
	haltOnce sync.Once

	mu      sync.Mutex
	phase   int // -1 between phases
	samples []MemSample
	phases  []MemPhase

	admin      string // the router's admin API, for its heap profiles
	profileDir string // empty: no profiles
	profiling  bool   // a profile is being fetched (under mu)
	profiledAt time.Time
	saved      map[string]bool // phases with a profile saved (under mu)
	fetch      sync.Mutex      // one profile fetched at a time
	profiles   sync.WaitGroup
}

func (s *memSampler) run() {
	defer s.wg.Done()
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		s.take()
		select {
		case <-tick.C:
		case <-s.stop:
			return
		}
	}
}

// take reads the process's memory once and records it under the current phase.
func (s *memSampler) take() {
	ps, err := ReadProc(s.pid)
	if err != nil {
		return
	}
	mapped, _ := ReadMappedRSS(s.pid, ".db")
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Since(s.start)
	s.samples = append(s.samples, MemSample{At: at, RSS: ps.RSS, Anon: ps.Anon, Exe: mapped.Exe, Log: mapped.Log, Phase: s.phase})
	if s.phase >= 0 {
		ph := &s.phases[s.phase]
		if ps.RSS > ph.Peak && s.profileDir != "" && !s.profiling && time.Since(s.profiledAt) >= 2*time.Second {
			s.profiling, s.profiledAt = true, time.Now()
			s.profiles.Add(1)
			go s.profile(ph.Name)
		}
		ph.Peak = max(ph.Peak, ps.RSS)
		ph.PeakAnon = max(ph.PeakAnon, ps.Anon)
		ph.PeakExe = max(ph.PeakExe, mapped.Exe)
		ph.PeakLog = max(ph.PeakLog, mapped.Log)
	}
}

// profile saves the router's heap profile and runtime statistics as the phase's peak ones.
func (s *memSampler) profile(phase string) {
	defer s.profiles.Done()
	s.fetch.Lock()
	defer s.fetch.Unlock()
	defer func() {
		s.mu.Lock()
		s.profiling = false
		s.mu.Unlock()
	}()
	for _, f := range []struct{ query, name string }{{"", "-peak.pb.gz"}, {"?debug=1", "-peak.txt"}} {
		body, err := getBody(s.admin + "/debug/pprof/heap" + f.query)
		if err != nil {
			return // a missed profile leaves the previous one, taken before the peak
		}
		path := filepath.Join(s.profileDir, phase+f.name)
		if err := os.WriteFile(path+".tmp", body, 0o644); err != nil {
			return
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return
		}
	}
	s.mu.Lock()
	s.saved[phase] = true
	s.mu.Unlock()
}

func getBody(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}

func (s *memSampler) begin(name, desc string, events int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases = append(s.phases, MemPhase{Name: name, Description: desc, Events: events, Start: time.Since(s.start)})
	s.phase = len(s.phases) - 1
}

// mark starts a named part of the current phase (the outage's delivery after the backlog).
func (s *memSampler) mark(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases[s.phase].Description += "; " + name + fmt.Sprintf(" at %.0fs", time.Since(s.start).Seconds())
}

// end closes the current phase after one last sample of it: a phase shorter than the
// sampling interval (a small replay on a fast machine) still has a peak.
func (s *memSampler) end() {
	s.take()
	if s.profileDir != "" {
		// A phase shorter than the profiles' interval gets one at its end.
		s.mu.Lock()
		name := s.phases[s.phase].Name
		missing := !s.saved[name]
		s.mu.Unlock()
		if missing {
			s.profiles.Add(1)
			s.profile(name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases[s.phase].End = time.Since(s.start)
	s.phase = -1
}

func (s *memSampler) halt() {
	s.haltOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.profiles.Wait()
	})
}

// memStatus is the part of the router's /api/v1/status the benchmark reads.
type memStatus struct {
	Store struct {
		LastSeq uint64 `json:"last_seq"`
	} `json:"store"`
}

func waitStatus(ctx context.Context, admin string, every time.Duration, cond func(memStatus) bool) error {
	for {
		var st memStatus
		req, _ := http.NewRequestWithContext(ctx, "GET", admin+"/api/v1/status", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if err == nil && cond(st) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(every):
		}
	}
}

func postJSON(ctx context.Context, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, answer)
	}
	return nil
}
