package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmrouter/wasmrouter/router/event"
)

// ReplayRequest selects logged events to deliver again (CONTRACT section 5). Since and Until
// are Go durations ("15m": that long ago) or RFC 3339 times.
type ReplayRequest struct {
	Routes []string `json:"routes"`
	Target string   `json:"target"`
	Since  string   `json:"since"`
	Until  string   `json:"until"`
	From   uint64   `json:"from_seq"`
	To     uint64   `json:"to_seq"`
	Rate   float64  `json:"rate"`
	DryRun bool     `json:"dry_run"`
}

// ErrBadReplay marks a request that selects nothing sensible (unknown route, bad time).
var ErrBadReplay = errors.New("bad replay request")

// Selection is a resolved replay request.
type Selection struct {
	Routes       []*Route
	Target       string
	From, To     uint64
	Since, Until time.Time
}

// Resolve checks req against the topology and the log's range. now anchors durations.
func (req ReplayRequest) Resolve(t *Topology, first, last uint64, now time.Time) (Selection, error) {
	sel := Selection{Target: req.Target, From: req.From, To: req.To}
	if len(req.Routes) == 0 {
		sel.Routes = t.Routes
	}
	for _, name := range req.Routes {
		r := t.Route(name)
		if r == nil {
			return sel, fmt.Errorf("%w: no route %q", ErrBadReplay, name)
		}
		sel.Routes = append(sel.Routes, r)
	}
	if req.Target != "" && t.Targets[req.Target] == nil {
		return sel, fmt.Errorf("%w: no target %q", ErrBadReplay, req.Target)
	}
	var err error
	if sel.Since, err = ParseWhen(req.Since, now); err != nil {
		return sel, fmt.Errorf("%w: since: %v", ErrBadReplay, err)
	}
	if sel.Until, err = ParseWhen(req.Until, now); err != nil {
		return sel, fmt.Errorf("%w: until: %v", ErrBadReplay, err)
	}
	if sel.From < first {
		sel.From = first
	}
	if sel.To == 0 || sel.To > last {
		sel.To = last // a replay covers the log as it was when it started
	}
	if req.Rate < 0 {
		return sel, fmt.Errorf("%w: negative rate", ErrBadReplay)
	}
	return sel, nil
}

// ParseWhen reads "15m" (that long before now) or an RFC 3339 time; "" is the zero time.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("negative duration %q", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration nor an RFC 3339 time", s)
	}
	return t, nil
}

// InTime reports whether ev was ingested within the selection's time range.
func (s *Selection) InTime(ev *event.Event) bool { return s.inTime(ev.IngestTime) }

func (s *Selection) inTime(ingest time.Time) bool {
	if !s.Since.IsZero() && ingest.Before(s.Since) {
		return false
	}
	return s.Until.IsZero() || !ingest.After(s.Until)
}

// targetsOf are the targets a route replays to under the selection.
func (s *Selection) targetsOf(t *Topology, r *Route) []string {
	all := r.DeliveryTargets(t)
	if s.Target == "" {
		return all
	}
	for _, tn := range all {
		if tn == s.Target {
			return []string{tn}
		}
	}
	return nil
}

// ReplayProgress is a job's state for GET /api/v1/replay/{id} and the CLI.
type ReplayProgress struct {
	ID        string    `json:"id"`
	State     string    `json:"state"` // running | done | failed | stopped
	Total     uint64    `json:"total"`
	Done      uint64    `json:"done"`
	Delivered uint64    `json:"delivered"`
	Error     string    `json:"error,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
	// DryRun is the report of a dry-run job once it is done.
	DryRun *DryRunReport `json:"dry_run,omitempty"`
}

// replayJob is one running replay: one bounded stream per selected (route, target).
type replayJob struct {
	id        string
	total     uint64
	done      atomic.Uint64
	delivered atomic.Uint64
	started   time.Time
	cancel    context.CancelFunc
	finished  chan struct{}

	mu     sync.Mutex
	state  string
	err    string
	end    time.Time
	report *DryRunReport
}

// finish records the end of a job: done, stopped (cancelled) or failed.
func (j *replayJob) finish(rep *DryRunReport, err error) {
	j.mu.Lock()
	j.state, j.end, j.report = "done", time.Now().UTC(), rep
	switch {
	case errors.Is(err, context.Canceled):
		j.state = "stopped"
	case err != nil:
		j.state, j.err = "failed", err.Error()
	}
	j.mu.Unlock()
	close(j.finished)
}

func (j *replayJob) progress() ReplayProgress {
	j.mu.Lock()
	defer j.mu.Unlock()
	return ReplayProgress{
		ID: j.id, State: j.state, Total: j.total, Done: j.done.Load(), Delivered: j.delivered.Load(),
		Error: j.err, Started: j.started, Finished: j.end, DryRun: j.report,
	}
}

// replays keeps the engine's replay jobs.
type replays struct {
	mu   sync.Mutex
	jobs map[string]*replayJob
	wg   sync.WaitGroup
}

// StartReplay begins a replay job and returns its id. Dry runs are not jobs: see DryRun.
func (e *Engine) StartReplay(ctx context.Context, req ReplayRequest) (string, error) {
	return e.startReplay(req, nil)
}

// StartDryRun begins a dry-run job: what a replay would deliver, and with candidate (which may
// be nil) where the candidate configuration decides differently. The report is in the job's
// progress when it is done.
func (e *Engine) StartDryRun(req ReplayRequest, candidate *Topology) (string, error) {
	req.DryRun = true
	return e.startReplay(req, candidate)
}

func (e *Engine) startReplay(req ReplayRequest, candidate *Topology) (string, error) {
	topo := e.topo.Load()
	sel, err := req.Resolve(topo, e.store.FirstSeq(), e.store.LastSeq(), time.Now())
	if err != nil {
		return "", err
	}
	if !req.DryRun && sel.Target != "" {
		// Routes that do not deliver to the target have no stream: leave them out of the
		// total too, or the job's progress would never reach it.
		sel.Routes = slices.DeleteFunc(slices.Clone(sel.Routes), func(r *Route) bool { return len(sel.targetsOf(topo, r)) == 0 })
	}
	events, pairs, err := CountSelected(e.store, topo, &sel)
	if err != nil {
		return "", err
	}
	// Progress counts events for a dry run, (event, route) pairs for a replay.
	total := pairs
	if req.DryRun {
		total = events
		if candidate != nil {
			if total, err = CountDryRun(e.store, topo, &sel, candidate); err != nil {
				return "", err
			}
		}
	}
	id := newJobID()
	jobCtx, cancel := context.WithCancel(context.Background())
	job := &replayJob{id: id, total: total, started: time.Now().UTC(), cancel: cancel, finished: make(chan struct{}), state: "running"}
	e.replays.add(job)
	if req.DryRun {
		go func() {
			defer e.replays.wg.Done()
			rep, err := DryRun(jobCtx, e.store, topo, &sel, candidate, func(n uint64) { job.done.Store(n) })
			job.finish(&rep, err)
		}()
		return id, nil
	}
	var streams []*stream
	// Nothing to replay: an empty log leaves sel.To at 0, which a stream would take for "no
	// end" (a live stream), and --from-seq may lie past the log's end.
	selected := sel.Routes
	if sel.To == 0 || sel.From > sel.To {
		selected = nil
	}
	for _, r := range selected {
		first := true
		for _, tn := range sel.targetsOf(topo, r) {
			for _, p := range e.publishersFor(topo.Targets[tn]) {
				s := e.newStream(r.Spec.Name, tn, p.cursorSuffix, p.pub)
				s.cursor = "replay/" + id + "/" + strings.TrimPrefix(s.cursor, "deliver/")
				s.from, s.to, s.replay = sel.From, sel.To, true
				s.keep = sel.InTime
				s.lag = nil
				counted := first
				first = false
				s.progress = func(uint64, bool) {
					if counted {
						job.done.Add(1)
					}
				}
				s.onDelivered = func() { job.delivered.Add(1) }
				streams = append(streams, s)
			}
		}
	}
	if req.Rate > 0 && len(streams) > 0 {
		for _, s := range streams {
			s.rate = req.Rate / float64(len(streams))
		}
	}
	go func() {
		defer e.replays.wg.Done()
		job.finish(nil, e.runReplay(jobCtx, streams))
		e.logFinished(job)
	}()
	e.log.Info("replay started", "id", id, "events", total, "from_seq", sel.From, "to_seq", sel.To, "streams", len(streams))
	return id, nil
}

// runReplay runs a job's streams to their ends and returns the first failure; the caller
// finishes the job (after any follow-up work, so that waiters see it done).
func (e *Engine) runReplay(ctx context.Context, streams []*stream) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", s.cursor, err)
			}
			_ = e.store.DeleteCursor(s.cursor)
		}()
	}
	wg.Wait()
	close(errs)
	var err error
	for serr := range errs {
		if err == nil || errors.Is(err, context.Canceled) {
			err = serr
		}
	}
	return err
}

func (e *Engine) logFinished(job *replayJob) {
	p := job.progress()
	e.log.Info("replay finished", "id", job.id, "state", p.State, "events", p.Done, "delivered", p.Delivered)
}

// ReplayStatus reports a job.
func (e *Engine) ReplayStatus(id string) (ReplayProgress, bool) {
	e.replays.mu.Lock()
	job := e.replays.jobs[id]
	e.replays.mu.Unlock()
	if job == nil {
		return ReplayProgress{}, false
	}
	return job.progress(), true
}

// WaitReplay blocks until the job ends or ctx does.
func (e *Engine) WaitReplay(ctx context.Context, id string) (ReplayProgress, error) {
	e.replays.mu.Lock()
	job := e.replays.jobs[id]
	e.replays.mu.Unlock()
	if job == nil {
		return ReplayProgress{}, fmt.Errorf("no replay %q", id)
	}
	select {
	case <-job.finished:
		return job.progress(), nil
	case <-ctx.Done():
		return job.progress(), ctx.Err()
	}
}

// add registers a job; the caller runs it and calls wg.Done when it ends.
func (r *replays) add(job *replayJob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jobs == nil {
		r.jobs = map[string]*replayJob{}
	}
	r.jobs[job.id] = job
	r.wg.Add(1)
}

// StopReplay cancels a job; it ends as "stopped". False when there is no such job.
func (e *Engine) StopReplay(id string) bool {
	e.replays.mu.Lock()
	job := e.replays.jobs[id]
	e.replays.mu.Unlock()
	if job == nil {
		return false
	}
	job.cancel()
	return true
}

// stopReplays cancels running jobs and waits for them (graceful stop).
func (e *Engine) stopReplays() {
	e.replays.mu.Lock()
	for _, j := range e.replays.jobs {
		j.cancel()
	}
	e.replays.mu.Unlock()
	e.replays.wg.Wait()
}

func newJobID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}
