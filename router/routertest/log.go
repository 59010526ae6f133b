// Package routertest has in-memory implementations of the engine's ports (Log, Source,
// Publisher) for the engine's unit tests, and one conformance suite per port that every
// implementation passes: the fakes here, the bbolt log of store, and the RabbitMQ source and
// publishers of internal/amqpx against the real broker.
package routertest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// Log is an in-memory event log. Appends commit at once (each its own "transaction"), in
// order; FailAppends and SetFull imitate a failing disk and a full log.
type Log struct {
	mu       sync.Mutex
	events   []*event.Event // events[i].Seq == first+i
	first    uint64         // seq of events[0]
	last     uint64
	fps      map[event.Fingerprint][]uint64
	notify   chan struct{}
	cursors  map[string]uint64
	dead     []event.DeadLetter
	jobs     map[string][]byte
	failWith error
	full     bool
	held     []func() // appends waiting while the log is full
	appended int
	// afterCommit, when set, runs after each commit and before its done callback.
	afterCommit func(seq uint64)
}

// NewLog returns an empty log.
func NewLog() *Log {
	return &Log{first: 1, fps: map[event.Fingerprint][]uint64{}, notify: make(chan struct{}),
		cursors: map[string]uint64{}, jobs: map[string][]byte{}}
}

// FailAppends makes every append fail with err until it is called with nil.
func (l *Log) FailAppends(err error) {
	l.mu.Lock()
	l.failWith = err
	l.mu.Unlock()
}

// SetFull marks the log full, as a bbolt log under on_full = "block" that reached its size:
// appends wait (their done is not called) until it is called with false.
func (l *Log) SetFull(full bool) {
	l.mu.Lock()
	l.full = full
	var held []func()
	if !full {
		held, l.held = l.held, nil
	}
	l.mu.Unlock()
	for _, append := range held {
		append()
	}
}

// AfterCommit sets fn to run after each commit, before the append's done: where a crash or a
// lost channel leaves an event logged but not acknowledged.
func (l *Log) AfterCommit(fn func(seq uint64)) {
	l.mu.Lock()
	l.afterCommit = fn
	l.mu.Unlock()
}

// Appended counts the events logged (duplicates and failures not included).
func (l *Log) Appended() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appended
}

// Append logs ev and calls done before returning, unless the log holds a duplicate within dedup.
func (l *Log) Append(ev *event.Event, fp event.Fingerprint, dedup event.Window, done func(seq uint64, dup bool, err error)) {
	l.mu.Lock()
	if l.full {
		l.held = append(l.held, func() { l.Append(ev, fp, dedup, done) })
		l.mu.Unlock()
		return
	}
	if fp == (event.Fingerprint{}) {
		fp = l.Fingerprint(ev)
	}
	if err := l.failWith; err != nil {
		l.mu.Unlock()
		done(0, false, err)
		return
	}
	if _, err := json.Marshal(ev.Headers); err != nil {
		l.mu.Unlock()
		done(0, false, fmt.Errorf("%w: %v", event.ErrUnsupported, err))
		return
	}
	for _, seq := range l.fps[fp] {
		if dedup.Contains(seq) {
			l.mu.Unlock()
			done(seq, true, nil)
			return
		}
	}
	l.last++
	stored := ev.Clone()
	stored.Seq = l.last
	ev.Seq = l.last
	l.events = append(l.events, stored)
	l.fps[fp] = append(l.fps[fp], l.last)
	l.appended++
	close(l.notify)
	l.notify = make(chan struct{})
	seq, after := l.last, l.afterCommit
	l.mu.Unlock()
	if after != nil {
		after(seq)
	}
	done(seq, false, nil)
}

// Fingerprint hashes ev's origin and content (not its seq or ingest time).
func (l *Log) Fingerprint(ev *event.Event) event.Fingerprint {
	c := *ev
	c.Seq, c.IngestTime = 0, time.Time{}
	b, _ := json.Marshal(struct {
		E *event.Event
		H []string
	}{&c, sortedKeys(ev.Headers)})
	var fp event.Fingerprint
	sum := sha256.Sum256(b)
	copy(fp[:], sum[:])
	return fp
}

func sortedKeys(t event.Table) []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Barrier calls done once every append before it has settled: at once, or when the log is no
// longer full.
func (l *Log) Barrier(done func(error)) {
	l.mu.Lock()
	if l.full {
		l.held = append(l.held, func() { done(nil) })
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	done(nil)
}

// FirstSeq is the lowest seq held, 0 when empty.
func (l *Log) FirstSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return 0
	}
	return l.first
}

// LastSeq is the highest seq ever logged.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Notify is closed at the next append.
func (l *Log) Notify() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

// Scan visits events from seq from (see router.Log).
func (l *Log) Scan(from uint64, limit int, keep event.Keep, fn func(*event.Event) bool) (uint64, error) {
	l.mu.Lock()
	next := max(from, l.first)
	var picked []*event.Event
	for looked := 0; next <= l.last && (limit <= 0 || looked < limit); looked++ {
		ev := l.events[next-l.first]
		next++
		if keep == nil || keep(ev.Source, ev.RoutingKey, ev.Routes) {
			picked = append(picked, ev.Clone())
		}
	}
	l.mu.Unlock()
	for _, ev := range picked {
		if !fn(ev) {
			return ev.Seq + 1, nil
		}
	}
	return next, nil
}

// Get reads one event.
func (l *Log) Get(seq uint64) (*event.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < l.first || seq > l.last {
		return nil, fmt.Errorf("seq %d: %w", seq, event.ErrNotFound)
	}
	return l.events[seq-l.first].Clone(), nil
}

// ScanHeads calls fn with the head of each event in [from, to].
func (l *Log) ScanHeads(from, to uint64, fn func(event.RecordHead) error) error {
	l.mu.Lock()
	var heads []event.RecordHead
	for seq := max(from, l.first); seq <= min(to, l.last); seq++ {
		ev := l.events[seq-l.first]
		heads = append(heads, event.RecordHead{Seq: seq, Source: []byte(ev.Source), RoutingKey: []byte(ev.RoutingKey), IngestTime: ev.IngestTime})
	}
	l.mu.Unlock()
	for _, h := range heads {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// Truncate removes the events up to seq (as retention does).
func (l *Log) Truncate(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.first <= seq && len(l.events) > 0 {
		l.events = l.events[1:]
		l.first++
	}
}

// Cursor reads a cursor (0 when unset).
func (l *Log) Cursor(name string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cursors[name], nil
}

// SetCursor moves a cursor forward; a seq not above it is ignored.
func (l *Log) SetCursor(name string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.cursors[name] {
		l.cursors[name] = seq
	}
}

// DeleteCursor forgets a cursor.
func (l *Log) DeleteCursor(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.cursors, name)
	return nil
}

// AddDeadLetter records dl, once per (route, target, seq) until it is redriven.
func (l *Log) AddDeadLetter(dl event.DeadLetter) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.dead {
		if d.Route == dl.Route && d.Target == dl.Target && d.Seq == dl.Seq && !d.Redriven {
			return d.ID, nil
		}
	}
	dl.ID = uint64(len(l.dead)) + 1
	dl.Redriven = false
	if dl.Time.IsZero() {
		dl.Time = time.Now().UTC()
	}
	l.dead = append(l.dead, dl)
	return dl.ID, nil
}

// LastDeadLetterID is the highest dead letter ID.
func (l *Log) LastDeadLetterID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.dead))
}

// DeadLetters visits dead letters by ID from fromID, at most limit (<= 0: all).
func (l *Log) DeadLetters(fromID uint64, limit int, fn func(event.DeadLetter) bool) error {
	l.mu.Lock()
	var out []event.DeadLetter
	for _, d := range l.dead {
		if d.ID >= fromID && (limit <= 0 || len(out) < limit) {
			out = append(out, d)
		}
	}
	l.mu.Unlock()
	for _, d := range out {
		if !fn(d) {
			break
		}
	}
	return nil
}

// MarkRedriven marks a dead letter redriven.
func (l *Log) MarkRedriven(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id == 0 || id > uint64(len(l.dead)) {
		return fmt.Errorf("dead letter %d: %w", id, event.ErrNotFound)
	}
	l.dead[id-1].Redriven = true
	return nil
}

// SaveJob keeps a job's specification.
func (l *Log) SaveJob(id string, spec []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.jobs[id] = slices.Clone(spec)
	return nil
}

// DeleteJob forgets a job.
func (l *Log) DeleteJob(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.jobs, id)
	return nil
}

// Job reads a job's specification.
func (l *Log) Job(id string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	spec, ok := l.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, event.ErrNoJob)
	}
	return slices.Clone(spec), nil
}

// Jobs lists the saved jobs' ids, sorted.
func (l *Log) Jobs() ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedKeysOf(l.jobs), nil
}

func sortedKeysOf(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Size is a rough size of what the log holds.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, ev := range l.events {
		n += int64(len(ev.Body)) + 64
	}
	return n
}

// Full reports SetFull's state.
func (l *Log) Full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.full
}

// CommitError is FailAppends' error.
func (l *Log) CommitError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failWith
}
