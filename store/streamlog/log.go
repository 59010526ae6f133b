package streamlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// Options configure a Log. Zero values take the defaults.
type Options struct {
	Stream      string        // the stream's name; declared when absent
	MaxAge      time.Duration // retention, x-max-age; 0: none
	MaxBytes    int64         // size cap, x-max-length-bytes; 0: none
	ClusterSize int           // replicas of a stream declared here, x-initial-cluster-size; 0: the broker's default
	// Window is how many appends may wait for the broker's confirm, default 1000.
	Window int
	// Recognised is how many of the latest records the redelivery index covers, default 16384.
	Recognised int
	// ReadyTimeout bounds Open's reading of the tail of the log into the index, default 60s.
	ReadyTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Window <= 0 {
		o.Window = 1000
	}
	if o.Recognised <= 0 {
		o.Recognised = 1 << 14
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
}

// startType marks the message a router writes into the stream when it opens it, before any
// event: reading the tail up to its own mark tells the router it has seen every record
// appended before it started, and offset 0 never holds an event (an event's seq is its
// offset, and seq 0 means "none"). Readers skip these marks.
const startType = "wasmrouter.log-start"

// ErrClosed is returned by a Log whose connection or channel is gone.
var ErrClosed = errors.New("streamlog: log closed")

// Log is the router's log in a RabbitMQ stream, shared with the other routers that append to
// the same stream. An event's seq is its offset in the stream.
type Log struct {
	opts Options
	conn *amqp.Connection

	pubMu    sync.Mutex // publish order is confirm order
	pub      *amqp.Channel
	slots    chan struct{} // one per append waiting for its confirm
	pending  chan pendingAppend
	pubDone  chan struct{}
	closeErr error

	index   *recentIndex
	tailCh  *amqp.Channel
	lastMu  sync.Mutex
	last    uint64        // the highest offset the tail has seen
	notify  chan struct{} // closed and replaced when last moves
	tailErr chan error
}

type pendingAppend struct {
	fp   store.Fingerprint
	done func(dup bool, err error)
}

// StreamArgs are the arguments the stream is declared with: retention and size map to the
// stream's own limits.
func StreamArgs(opts Options) amqp.Table {
	args := amqp.Table{"x-queue-type": "stream"}
	if opts.MaxAge > 0 {
		args["x-max-age"] = maxAge(opts.MaxAge)
	}
	if opts.MaxBytes > 0 {
		args["x-max-length-bytes"] = opts.MaxBytes
	}
	if opts.ClusterSize > 0 {
		args["x-initial-cluster-size"] = int32(opts.ClusterSize)
	}
	return args
}

// maxAge spells d as x-max-age wants it (a number and one of the units s, m, h), rounded up to
// the second so that a retention is never shortened.
func maxAge(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	switch {
	case secs%3600 == 0:
		return strconv.FormatInt(secs/3600, 10) + "h"
	case secs%60 == 0:
		return strconv.FormatInt(secs/60, 10) + "m"
	default:
		return strconv.FormatInt(secs, 10) + "s"
	}
}

// Open declares the stream, reads the latest records into the redelivery index (whichever
// router wrote them) and starts appending. conn is the log's own connection; Close closes
// the log's channels, not conn.
func Open(conn *amqp.Connection, opts Options) (*Log, error) {
	opts.setDefaults()
	if opts.Stream == "" {
		return nil, errors.New("streamlog: Options.Stream is required")
	}
	l := &Log{opts: opts, conn: conn, slots: make(chan struct{}, opts.Window),
		pending: make(chan pendingAppend, opts.Window), pubDone: make(chan struct{}),
		index: newRecentIndex(opts.Recognised), notify: make(chan struct{}), tailErr: make(chan error, 1)}
	if err := l.open(); err != nil {
		l.Close()
		return nil, fmt.Errorf("streamlog: opening stream %s: %w", opts.Stream, err)
	}
	return l, nil
}

func (l *Log) open() error {
	var err error
	if l.pub, err = l.conn.Channel(); err != nil {
		return err
	}
	if err := l.pub.Confirm(false); err != nil {
		return err
	}
	confirms := l.pub.NotifyPublish(make(chan amqp.Confirmation, l.opts.Window))
	go l.confirmLoop(confirms)
	if _, err := l.pub.QueueDeclare(l.opts.Stream, true, false, false, false, StreamArgs(l.opts)); err != nil {
		return err
	}
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	markID := hex.EncodeToString(mark)
	done := make(chan error, 1)
	l.publish(amqp.Publishing{Type: startType, MessageId: markID, DeliveryMode: amqp.Persistent},
		pendingAppend{done: func(_ bool, err error) { done <- err }})
	if err := <-done; err != nil {
		return err
	}
	from, err := l.tailStart()
	if err != nil {
		return err
	}
	return l.startTail(from, markID)
}

// tailStart is where the index starts reading: Recognised records before the start of the
// stream's last chunk.
func (l *Log) tailStart() (uint64, error) {
	ch, err := l.conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Qos(1, 0, false); err != nil {
		return 0, err
	}
	deliveries, err := ch.Consume(l.opts.Stream, "", false, false, false, false, amqp.Table{"x-stream-offset": "last"})
	if err != nil {
		return 0, err
	}
	select {
	case d, ok := <-deliveries:
		if !ok {
			return 0, ErrClosed
		}
		off, err := offsetOf(d)
		if err != nil {
			return 0, err
		}
		return off - min(off, uint64(l.opts.Recognised)), nil
	case <-time.After(l.opts.ReadyTimeout):
		return 0, fmt.Errorf("the stream's last chunk did not arrive within %s", l.opts.ReadyTimeout)
	}
}

// offsetOf is a stream delivery's offset.
func offsetOf(d amqp.Delivery) (uint64, error) {
	if off, ok := d.Headers["x-stream-offset"].(int64); ok && off >= 0 {
		return uint64(off), nil
	}
	return 0, fmt.Errorf("delivery without an x-stream-offset header (%v)", d.Headers["x-stream-offset"])
}

// Append writes ev to the stream and calls done once the broker confirmed it (or failed). A
// redelivered message whose event is among the latest records, whoever wrote them, is not
// written again: done reports dup.
func (l *Log) Append(ev *event.Event, redelivered bool, done func(dup bool, err error)) {
	fp := store.FingerprintOf(ev)
	if redelivered && l.index.contains(fp) {
		done(true, nil)
		return
	}
	body, err := store.EncodeRecord(nil, ev, fp)
	if err != nil {
		done(false, err)
		return
	}
	l.publish(amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}, pendingAppend{fp: fp, done: done})
}

// publish sends one message; its confirm goes to p.done, in order.
func (l *Log) publish(msg amqp.Publishing, p pendingAppend) {
	select {
	case l.slots <- struct{}{}:
	case <-l.pubDone:
		p.done(false, ErrClosed)
		return
	}
	l.pubMu.Lock()
	err := ErrClosed
	select {
	case <-l.pubDone: // confirmLoop no longer drains pending
	default:
		err = l.pub.Publish("", l.opts.Stream, false, false, msg)
	}
	if err == nil {
		l.pending <- p // in publish order, which is confirm order
	}
	l.pubMu.Unlock()
	if err != nil {
		<-l.slots
		p.done(false, fmt.Errorf("streamlog: append: %w", err))
	}
}

// confirmLoop hands each confirm to its append. When the channel closes, every append still
// waiting fails: its source message is not acknowledged, the broker redelivers it.
func (l *Log) confirmLoop(confirms <-chan amqp.Confirmation) {
	for c := range confirms {
		p := <-l.pending
		<-l.slots
		if !c.Ack {
			p.done(false, errors.New("streamlog: the broker refused the append"))
			continue
		}
		if p.fp != (store.Fingerprint{}) {
			l.index.add(p.fp)
		}
		p.done(false, nil)
	}
	l.pubMu.Lock()
	close(l.pubDone)
	l.pubMu.Unlock()
	for {
		select {
		case p := <-l.pending:
			<-l.slots
			p.done(false, ErrClosed)
		default:
			return
		}
	}
}

// startTail follows the stream from offset from, feeding the redelivery index with every
// router's appends and moving LastSeq, and returns once it has read up to this router's mark.
func (l *Log) startTail(from uint64, markID string) error {
	var err error
	if l.tailCh, err = l.conn.Channel(); err != nil {
		return err
	}
	if err := l.tailCh.Qos(1000, 0, false); err != nil {
		return err
	}
	deliveries, err := l.tailCh.Consume(l.opts.Stream, "", false, false, false, false, amqp.Table{"x-stream-offset": int64(from)})
	if err != nil {
		return err
	}
	caughtUp := make(chan struct{})
	go l.tail(deliveries, markID, caughtUp)
	select {
	case <-caughtUp:
		return nil
	case err := <-l.tailErr:
		return err
	case <-time.After(l.opts.ReadyTimeout):
		return fmt.Errorf("reading the latest records took longer than %s", l.opts.ReadyTimeout)
	}
}

func (l *Log) tail(deliveries <-chan amqp.Delivery, markID string, caughtUp chan struct{}) {
	signalled := false
	n := 0
	for d := range deliveries {
		off, err := offsetOf(d)
		if err != nil {
			l.tailErr <- err
			return
		}
		if d.Type != startType {
			if fp, err := store.RecordFingerprint(d.Body); err == nil {
				l.index.add(fp)
			}
		}
		l.lastMu.Lock()
		if off > l.last {
			l.last = off
			close(l.notify)
			l.notify = make(chan struct{})
		}
		l.lastMu.Unlock()
		if !signalled && d.Type == startType && d.MessageId == markID {
			close(caughtUp)
			signalled = true
		}
		// Stream consumers must acknowledge to get more (credit); once per batch is enough.
		if n++; n%500 == 0 || len(deliveries) == 0 {
			_ = d.Ack(true)
		}
	}
	select {
	case l.tailErr <- ErrClosed:
	default:
	}
}

// LastSeq is the highest seq this router has seen in the stream (its own appends and every
// other router's).
func (l *Log) LastSeq() uint64 {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	return l.last
}

// Notify returns a channel that is closed when LastSeq moves.
func (l *Log) Notify() <-chan struct{} {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	return l.notify
}

// Read calls fn with every event from seq from onwards, in log order, following the stream
// as it grows, until ctx ends (nil), fn returns an error (that error) or the channel closes.
func (l *Log) Read(ctx context.Context, from uint64, fn func(ev *event.Event) error) error {
	ch, err := l.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(500, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(l.opts.Stream, "", false, false, false, false, amqp.Table{"x-stream-offset": int64(from)})
	if err != nil {
		return err
	}
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return ErrClosed
			}
			off, err := offsetOf(d)
			if err != nil {
				return err
			}
			// Reading starts at the chunk that holds from: skip what comes before it.
			if off >= from && d.Type != startType {
				ev, _, err := store.DecodeRecord(d.Body, off)
				if err != nil {
					return fmt.Errorf("streamlog: record at offset %d: %w", off, err)
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			if n++; n%250 == 0 || len(deliveries) == 0 {
				_ = d.Ack(true)
			}
		}
	}
}

// Close closes the log's channels; appends still waiting for a confirm fail.
func (l *Log) Close() {
	if l.tailCh != nil {
		_ = l.tailCh.Close()
	}
	if l.pub != nil {
		_ = l.pub.Close()
	}
}

// recentIndex holds the fingerprints of the latest records: a redelivery matching one of them
// is not written again. A redelivery of something older is written again: a duplicate record,
// never a loss.
type recentIndex struct {
	mu   sync.Mutex
	ring []store.Fingerprint
	next int
	set  map[store.Fingerprint]int // fingerprint -> copies in ring
}

func newRecentIndex(size int) *recentIndex {
	return &recentIndex{ring: make([]store.Fingerprint, 0, size), set: make(map[store.Fingerprint]int, size)}
}

func (x *recentIndex) add(fp store.Fingerprint) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.ring) < cap(x.ring) {
		x.ring = append(x.ring, fp)
	} else {
		old := x.ring[x.next]
		if x.set[old]--; x.set[old] <= 0 {
			delete(x.set, old)
		}
		x.ring[x.next] = fp
		x.next = (x.next + 1) % len(x.ring)
	}
	x.set[fp]++
}

func (x *recentIndex) contains(fp store.Fingerprint) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.set[fp] > 0
}
