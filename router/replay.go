package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// ReplayRequest selects logged events to deliver again (docs/admin-api.md). Since and Until
// are durations ("15m", "7d": that long ago) or RFC 3339 times.
type ReplayRequest struct {
	Routes []string `json:"routes"`
	Target string   `json:"target"`
	Since  string   `json:"since"`
	Until  string   `json:"until"`
	From   uint64   `json:"from_seq"`
	To     uint64   `json:"to_seq"`
	Rate   float64  `json:"rate"`
	DryRun bool     `json:"dry_run"`
	// Resume continues the unfinished replay job with this id (an extension of
	// docs/admin-api.md): the job keeps its selection; only Rate may be given with it.
	Resume string `json:"resume,omitempty"`
}

func (req ReplayRequest) selectsNothing() bool {
	return len(req.Routes) == 0 && req.Target == "" && req.Since == "" && req.Until == "" &&
		req.From == 0 && req.To == 0 && !req.DryRun
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
	if d, err := config.ParseDuration(s); err == nil {
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
	ID        string `json:"id"`
	State     string `json:"state"` // running | done | failed | stopped
	Total     uint64 `json:"total"`
	Done      uint64 `json:"done"`
	Delivered uint64 `json:"delivered"`
	// Selected is what the job covers: events (routes apart) for a replay, dead letters for
	// a redrive. Dropped counts events a filter dropped, Failed those given up (Failures
	// lists the first of them with their reasons), DeadLettered the failures recorded as new
	// dead letters.
	Selected     uint64       `json:"selected"`
	Dropped      uint64       `json:"dropped"`
	Failed       uint64       `json:"failed"`
	DeadLettered uint64       `json:"dead_lettered"`
	Failures     []JobFailure `json:"failures"`
	Error        string       `json:"error,omitempty"`
	Started      time.Time    `json:"started"`
	Finished     time.Time    `json:"finished,omitzero"`
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

	selected uint64
	outcomes jobOutcomes
}

// ended returns when the job ended, and whether it has.
func (j *replayJob) ended() (time.Time, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.end, !j.end.IsZero()
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
	p := ReplayProgress{
		ID: j.id, State: j.state, Total: j.total, Done: j.done.Load(), Delivered: j.delivered.Load(),
		Error: j.err, Started: j.started, Finished: j.end, DryRun: j.report, Selected: j.selected,
	}
	j.outcomes.fill(&p)
	return p
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
	if req.Resume != "" {
		if !req.selectsNothing() {
			return "", fmt.Errorf("%w: resume takes no selection: the job keeps its own (rate may change)", ErrBadReplay)
		}
		return e.resumeReplay(req.Resume, req.Rate)
	}
	// Counted as in use until the job's dry run ends, or this function returns: a reload
	// closes the guests of a topology only once nothing uses it.
	topo := e.acquireTopology()
	handedOver := false
	defer func() {
		if !handedOver {
			topo.release()
		}
	}()
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
	job := &replayJob{id: id, total: total, selected: events, started: time.Now().UTC(), cancel: cancel, finished: make(chan struct{}), state: "running"}
	if err := e.replays.add(job); err != nil {
		cancel()
		return "", err
	}
	if req.DryRun {
		handedOver = true
		go func() {
			defer e.replays.wg.Done()
			defer topo.release()
			rep, err := DryRun(jobCtx, e.store, topo, &sel, candidate, func(n uint64) { job.done.Store(n) })
			job.finish(&rep, err)
		}()
		return id, nil
	}
	// Nothing to replay: an empty log leaves sel.To at 0, which a stream would take for "no
	// end" (a live stream), and --from-seq may lie past the log's end.
	if sel.To == 0 || sel.From > sel.To {
		sel.Routes = nil
	}
	streams, err := e.replayStreams(job, topo, &sel, req.Rate)
	if err != nil {
		e.replays.remove(job)
		cancel()
		return "", err
	}
	if len(streams) > 0 {
		// Saved before the first delivery: a job the process does not see to its end (a crash,
		// an interrupt, a stop) can be resumed from its cursors.
		if err := e.saveReplay(id, &sel, req.Rate); err != nil {
			closeStreams(streams)
			e.replays.remove(job)
			cancel()
			return "", err
		}
	}
	e.runJob(jobCtx, job, streams)
	e.log.Info("replay started", "id", id, "events", total, "from_seq", sel.From, "to_seq", sel.To, "streams", len(streams))
	return id, nil
}

// replaySpec is what the log keeps of an unfinished replay job, to resume it.
type replaySpec struct {
	Routes []string  `json:"routes"`
	Target string    `json:"target,omitempty"`
	From   uint64    `json:"from_seq"`
	To     uint64    `json:"to_seq"`
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	Rate   float64   `json:"rate,omitempty"`
}

func (e *Engine) saveReplay(id string, sel *Selection, rate float64) error {
	spec := replaySpec{Target: sel.Target, From: sel.From, To: sel.To, Since: sel.Since, Until: sel.Until, Rate: rate}
	for _, r := range sel.Routes {
		spec.Routes = append(spec.Routes, r.Spec.Name)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := e.store.SaveJob(id, data); err != nil {
		return fmt.Errorf("recording replay %s in the log: %w", id, err)
	}
	return nil
}

// replayStreams builds a job's streams: one bounded stream per selected (route, target), and
// per cluster for targets in "all" mode. Each keeps its position in a cursor of the job's.
func (e *Engine) replayStreams(job *replayJob, topo *Topology, sel *Selection, rate float64) ([]*stream, error) {
	var streams []*stream
	for _, r := range sel.Routes {
		first := true
		for _, tn := range sel.targetsOf(topo, r) {
			pubs, err := e.publishersFor(topo.Targets[tn])
			if err != nil {
				closeStreams(streams)
				return nil, err
			}
			for _, p := range pubs {
				s := e.newStream(r.Spec.Name, tn, p.cursorSuffix, p.pub)
				s.cursor = "replay/" + job.id + "/" + strings.TrimPrefix(s.cursor, "deliver/")
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
				job.outcomes.watch(s, counted)
				streams = append(streams, s)
			}
		}
	}
	if rate > 0 && len(streams) > 0 {
		for _, s := range streams {
			s.rate = rate / float64(len(streams))
		}
	}
	return streams, nil
}

// closeStreams releases the publishers of streams that will not run.
func closeStreams(streams []*stream) {
	for _, s := range streams {
		_ = s.pub.Close()
	}
}

// runJob runs a replay job's streams in the background. A job that reaches its end forgets
// its record and cursors; one that does not (stopped, failed, or cut short by a stop of the
// engine) keeps them, to be resumed.
func (e *Engine) runJob(ctx context.Context, job *replayJob, streams []*stream) {
	go func() {
		defer e.replays.wg.Done()
		err := e.runReplay(ctx, streams, true)
		if err == nil && len(streams) > 0 {
			if derr := e.store.DeleteJob(job.id); derr != nil {
				e.log.Warn("replay done, but its record stays in the log", "id", job.id, "error", derr)
			}
		}
		job.finish(nil, err)
		e.logFinished(job)
	}()
}

// errCutShort ends a job whose streams the engine stopped before their end: it is stopped,
// and can be resumed.
var errCutShort = fmt.Errorf("the router stopped before the end: %w", context.Canceled)

// runReplay runs a job's streams to their ends and returns the first failure; the caller
// finishes the job (after any follow-up work, so that waiters see it done). A stream that
// reaches its end deletes its cursor; with keepUnfinished, one that does not keeps it.
func (e *Engine) runReplay(ctx context.Context, streams []*stream, keepUnfinished bool) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.run(ctx)
			if err == nil && !s.finished() {
				err = errCutShort
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", s.cursor, err)
			}
			if err == nil || !keepUnfinished {
				_ = e.store.DeleteCursor(s.cursor)
			}
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

// resumeReplay continues an unfinished replay job: its streams go on after their cursors,
// under the same id. rate, when above 0, replaces the job's own.
func (e *Engine) resumeReplay(id string, rate float64) (string, error) {
	data, err := e.store.Job(id)
	if errors.Is(err, event.ErrNoJob) {
		ids, _ := e.store.Jobs()
		return "", fmt.Errorf("%w: no unfinished replay %q to resume (unfinished: %s)", ErrBadReplay, id, listOrNone(ids))
	}
	if err != nil {
		return "", err
	}
	var spec replaySpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("replay %s: its record in the log: %w", id, err)
	}
	if e.replays.running(id) {
		return "", fmt.Errorf("%w: replay %s is running", ErrBadReplay, id)
	}
	topo := e.topo.Load()
	sel := Selection{Target: spec.Target, From: spec.From, To: spec.To, Since: spec.Since, Until: spec.Until}
	if sel.Target != "" && topo.Targets[sel.Target] == nil {
		return "", fmt.Errorf("%w: replay %s: target %q is no longer configured", ErrBadReplay, id, sel.Target)
	}
	for _, name := range spec.Routes {
		r := topo.Route(name)
		if r == nil {
			return "", fmt.Errorf("%w: replay %s: route %q is no longer configured", ErrBadReplay, id, name)
		}
		sel.Routes = append(sel.Routes, r)
	}
	if rate <= 0 {
		rate = spec.Rate
	}
	jobCtx, cancel := context.WithCancel(context.Background())
	job := &replayJob{id: id, started: time.Now().UTC(), cancel: cancel, finished: make(chan struct{}), state: "running"}
	streams, err := e.replayStreams(job, topo, &sel, rate)
	if err != nil {
		cancel()
		return "", err
	}
	resumeFrom := sel.To + 1
	for _, s := range streams {
		pos, err := e.store.Cursor(s.cursor)
		if err != nil {
			closeStreams(streams)
			cancel()
			return "", err
		}
		s.from = max(s.from, pos+1)
		resumeFrom = min(resumeFrom, s.from)
	}
	rest := sel
	rest.From = resumeFrom
	if resumeFrom <= rest.To {
		if job.selected, job.total, err = CountSelected(e.store, topo, &rest); err != nil {
			cancel()
			return "", err
		}
	}
	if err := e.replays.add(job); err != nil {
		cancel()
		return "", err
	}
	e.runJob(jobCtx, job, streams)
	e.log.Info("replay resumed", "id", id, "events", job.total, "from_seq", resumeFrom, "to_seq", sel.To, "streams", len(streams))
	return id, nil
}

func listOrNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
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

// running reports whether the job with id runs now.
func (r *replays) running(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	job := r.jobs[id]
	if job == nil {
		return false
	}
	select {
	case <-job.finished:
		return false
	default:
		return true
	}
}

// remove forgets a job that was added but will not run.
func (r *replays) remove(job *replayJob) {
	r.mu.Lock()
	delete(r.jobs, job.id)
	r.mu.Unlock()
	r.wg.Done()
}

// Finished jobs are kept for their progress and report, but not forever: a dry run's report
// can be large and anyone may start jobs. A finished job is forgotten after keepFinished, and
// at most maxFinished of them are kept (the oldest go first); at most maxRunning run at once.
const (
	keepFinished = time.Hour
	maxFinished  = 64
	maxRunning   = 16
)

// ErrTooManyJobs refuses a job while maxRunning others run.
var ErrTooManyJobs = errors.New("too many replay jobs running")

// add registers a job; the caller runs it and calls wg.Done when it ends.
func (r *replays) add(job *replayJob) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jobs == nil {
		r.jobs = map[string]*replayJob{}
	}
	if r.pruneLocked(time.Now()) >= maxRunning {
		return fmt.Errorf("%w: %w (%d); wait for one to end or stop one", ErrBadReplay, ErrTooManyJobs, maxRunning)
	}
	r.jobs[job.id] = job
	r.wg.Add(1)
	return nil
}

// pruneLocked forgets expired finished jobs and the oldest beyond maxFinished, and returns
// how many jobs are running.
func (r *replays) pruneLocked(now time.Time) (running int) {
	var finished []*replayJob
	for id, job := range r.jobs {
		end, over := job.ended()
		switch {
		case !over:
			running++
		case now.Sub(end) > keepFinished:
			delete(r.jobs, id)
		default:
			finished = append(finished, job)
		}
	}
	if len(finished) > maxFinished {
		slices.SortFunc(finished, func(a, b *replayJob) int {
			ea, _ := a.ended()
			eb, _ := b.ended()
			return ea.Compare(eb)
		})
		for _, job := range finished[:len(finished)-maxFinished] {
			delete(r.jobs, job.id)
		}
	}
	return running
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
