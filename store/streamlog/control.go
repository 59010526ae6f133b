package streamlog

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/store"
)

// Control is what the routers sharing a log keep besides the events: dead letters and saved
// replay jobs. It lives in a stream of its own (the log's name plus ".control"), as small JSON
// records, and every router reads all of it at Open and follows it afterwards, so that each
// has the same view: `router dlq` and replay jobs work on any router.
type Control struct {
	log *Log

	mu       sync.Mutex
	dead     map[uint64]*store.DeadLetter // by ID, the record's seq in the control stream
	deadKey  map[deadKey]uint64           // dead letters not redriven, by what they are about
	lastDead uint64
	jobs     map[string][]byte
	holders  map[string]PairHolder // by delivery cursor: the latest router to take the pair
	takes    map[string]int        // by delivery cursor: how many times a router took the pair
}

// PairHolder is the router that took a pair last, as the control stream says.
type PairHolder struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

type heldRecord struct {
	Cursor string    `json:"cursor"`
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

type deadKey struct {
	route, target string
	seq           uint64
}

// Record types of the control stream.
const (
	deadType     = "wasmrouter.dead-letter"
	redrivenType = "wasmrouter.redriven"
	jobType      = "wasmrouter.job"
	jobDoneType  = "wasmrouter.job-deleted"
	heldType     = "wasmrouter.pair-held"
)

type jobRecord struct {
	ID   string `json:"id"`
	Spec []byte `json:"spec,omitempty"`
}

// ControlStream is the name of the control stream of the log in stream.
func ControlStream(stream string) string { return stream + ".control" }

// OpenControl declares the control stream of the log opts.Stream (with the log's retention
// and replicas) and reads it whole.
func OpenControl(conn *amqp.Connection, opts Options) (*Control, error) {
	opts.Stream = ControlStream(opts.Stream)
	// A few records a minute: AMQP 0-9-1 is enough, and the stream protocol's connections
	// are the events' alone.
	opts.Native = nil
	c := &Control{dead: map[uint64]*store.DeadLetter{}, deadKey: map[deadKey]uint64{}, jobs: map[string][]byte{},
		holders: map[string]PairHolder{}, takes: map[string]int{}}
	c.log = newLog(conn, opts)
	c.log.fromFirst = true
	c.log.onRecord = c.apply
	if err := c.log.start(); err != nil {
		return nil, err
	}
	return c, nil
}

// apply updates the view with one record of the control stream, whichever router wrote it.
func (c *Control) apply(off uint64, d record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch d.Type {
	case deadType:
		var dl store.DeadLetter
		if json.Unmarshal(d.Body, &dl) != nil {
			return
		}
		k := deadKey{dl.Route, dl.Target, dl.Seq}
		if _, dup := c.deadKey[k]; dup {
			return // two routers recorded the same; the first counts
		}
		dl.ID, dl.Redriven = off, false
		c.dead[off] = &dl
		c.deadKey[k] = off
		c.lastDead = max(c.lastDead, off)
	case redrivenType:
		var id uint64
		if json.Unmarshal(d.Body, &id) != nil {
			return
		}
		if dl := c.dead[id]; dl != nil && !dl.Redriven {
			dl.Redriven = true
			delete(c.deadKey, deadKey{dl.Route, dl.Target, dl.Seq})
		}
	case jobType:
		var j jobRecord
		if json.Unmarshal(d.Body, &j) == nil {
			c.jobs[j.ID] = j.Spec
		}
	case jobDoneType:
		var j jobRecord
		if json.Unmarshal(d.Body, &j) == nil {
			delete(c.jobs, j.ID)
		}
	case heldType:
		var h heldRecord
		if json.Unmarshal(d.Body, &h) == nil {
			c.holders[h.Cursor] = PairHolder{Holder: h.Holder, Since: h.Since}
			c.takes[h.Cursor]++
		}
	}
}

// noteHeld records that holder took the pair of cursor, so that every router's status can say
// who delivers it.
func (c *Control) noteHeld(cursor, holder string) error {
	_, err := c.write(heldType, heldRecord{Cursor: cursor, Holder: holder, Since: time.Now().UTC()})
	return err
}

// Holders are the latest router to take each pair, by delivery cursor.
func (c *Control) Holders() map[string]PairHolder {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.holders)
}

// Takes is how many times a router took each pair, by delivery cursor, over the whole control
// stream: the first take and every move after it (a takeover, or a pair handed over to even
// the pairs out). Each move may repeat up to a delivery window of events and step the
// pair's seqs back once, so this is what bounds both.
func (c *Control) Takes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.takes)
}

// write appends one record and waits until it is done: confirmed, and applied to the view
// (the tail applies a record before the append that wrote it is done).
func (c *Control) write(typ string, v any) (uint64, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	type result struct {
		seq uint64
		err error
	}
	done := make(chan result, 1)
	c.log.publish(outMsg{Type: typ, ContentType: "application/json", Body: body},
		&pendingAppend{done: func(seq uint64, _ bool, err error) { done <- result{seq, err} }})
	r := <-done
	if r.err != nil {
		return 0, fmt.Errorf("streamlog: control: %w", r.err)
	}
	return r.seq, nil
}

// AddDeadLetter records dl and returns its ID. It is idempotent on (Route, Target, Seq) until
// the dead letter is redriven: recording the same again returns the existing ID.
func (c *Control) AddDeadLetter(dl store.DeadLetter) (uint64, error) {
	k := deadKey{dl.Route, dl.Target, dl.Seq}
	c.mu.Lock()
	id, ok := c.deadKey[k]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	if dl.Time.IsZero() {
		dl.Time = time.Now().UTC()
	}
	dl.ID, dl.Redriven = 0, false
	if _, err := c.write(deadType, dl); err != nil {
		return 0, err
	}
	// Another router may have recorded the same a moment earlier: the view keeps the first.
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadKey[k], nil
}

// LastDeadLetterID is the highest dead letter ID this router has seen.
func (c *Control) LastDeadLetterID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastDead
}

// DeadLetters visits the dead letters with ID >= fromID in ID order, at most limit of them
// (limit <= 0: all), until fn returns false.
func (c *Control) DeadLetters(fromID uint64, limit int, fn func(store.DeadLetter) bool) error {
	c.mu.Lock()
	var sel []store.DeadLetter
	for id, dl := range c.dead {
		if id >= fromID {
			sel = append(sel, *dl)
		}
	}
	c.mu.Unlock()
	sort.Slice(sel, func(i, j int) bool { return sel[i].ID < sel[j].ID })
	for i, dl := range sel {
		if limit > 0 && i >= limit {
			return nil
		}
		if !fn(dl) {
			return nil
		}
	}
	return nil
}

// MarkRedriven records that the dead letter id was delivered again.
func (c *Control) MarkRedriven(id uint64) error {
	c.mu.Lock()
	_, ok := c.dead[id]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("streamlog: dead letter %d: %w", id, store.ErrNotFound)
	}
	_, err := c.write(redrivenType, id)
	return err
}

// SaveJob keeps a replay job's description until DeleteJob.
func (c *Control) SaveJob(id string, spec []byte) error {
	_, err := c.write(jobType, jobRecord{ID: id, Spec: spec})
	return err
}

// DeleteJob forgets a job.
func (c *Control) DeleteJob(id string) error {
	_, err := c.write(jobDoneType, jobRecord{ID: id})
	return err
}

// Job returns the description saved under id, or store.ErrNoJob.
func (c *Control) Job(id string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	spec, ok := c.jobs[id]
	if !ok {
		return nil, store.ErrNoJob
	}
	return append([]byte(nil), spec...), nil
}

// Jobs lists the saved jobs' ids, sorted.
func (c *Control) Jobs() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.jobs))
	for id := range c.jobs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// Close closes the control stream's channels.
func (c *Control) Close() { c.log.Close() }
