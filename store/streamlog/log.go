package streamlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// Options configure a Log. Zero values take the defaults.
type Options struct {
	Stream      string        // the stream's name; declared when absent
	MaxAge      time.Duration // retention, x-max-age; 0: none
	MaxBytes    int64         // size cap, x-max-length-bytes; 0: none
	ClusterSize int           // replicas of a stream declared here, x-initial-cluster-size; 0: the broker's default
	// Window is how many appends may be on their way at once, default 1000.
	Window int
	// Recognised is how many of the latest records the redelivery index covers, default 16384.
	Recognised int
	// Unacked is how many of a router's latest events a redelivery may be the first copy of,
	// default 4096: a router leaves at most its sources' prefetch unacknowledged, and those
	// are among the events it logged last. An identical message logged before them is another
	// message (Celery sends identical ones), not the first copy.
	Unacked int
	// Recent is how many of the latest records are kept in memory for reads, default 8192.
	Recent int
	// BalanceEvery is how often a Store compares the pairs it holds with its share and gives
	// one up when it holds more (balance.go), default 5s; negative: never.
	BalanceEvery time.Duration
	// ReadyTimeout bounds Open's reading of the tail of the log into the index, and a read's
	// wait for the broker, default 60s.
	ReadyTimeout time.Duration
	// Spare, when set, opens a short-lived connection to the same broker. Open writes its
	// first record to a stream through one before its own connection does: RabbitMQ 3.10
	// answers the declare of a stream another router is still creating before the stream can
	// take a message, and a publish then closes the whole connection (ensureWritable).
	Spare func(ctx context.Context) (*amqp.Connection, error)
	// Native, when set, appends and reads the events over the stream protocol; the
	// declaration of the stream and the first record through Spare stay on AMQP 0-9-1.
	Native *Native
	// hold, when set, makes the connection's writes wait until the returned release, so that
	// the appends queued at once go out in a few socket writes (amqp091-go writes each
	// publish on its own).
	hold func() (release func())
}

func (o *Options) setDefaults() {
	if o.Window <= 0 {
		o.Window = 1000
	}
	if o.Recognised <= 0 {
		o.Recognised = 1 << 14
	}
	if o.Unacked <= 0 {
		o.Unacked = 1 << 12
	}
	if o.Recent <= 0 {
		o.Recent = 1 << 13
	}
	if o.BalanceEvery == 0 {
		o.BalanceEvery = balanceEvery
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

// ErrClosed is returned by a Log whose connection or channels are gone.
var ErrClosed = errors.New("streamlog: log closed")

// Log is the router's log in a RabbitMQ stream, shared with the other routers that append to
// the same stream. An event's seq is its offset in the stream.
//
// An append is done when the broker confirmed it and this router's tail of the stream has
// seen it: the confirm says it is durable, the tail gives its offset (AMQP 0-9-1 confirms do
// not carry one). Every message this router writes has a message id made of the router's
// prefix and a counter, which is how the tail recognises its own.
type Log struct {
	opts   Options
	conn   *amqp.Connection
	prefix string // of this router's message ids in the stream

	pubMu   sync.Mutex // ids are taken in append order
	pub     *amqp.Channel
	nextID  uint64
	slots   chan struct{}       // one per append not yet done
	out     chan outgoing       // to publishLoop, which publishes them in this order
	fifo    chan *pendingAppend // in publish order, which is confirm order
	pubDone chan struct{}       // closed when appends can no longer complete

	waitMu      sync.Mutex
	waiting     map[uint64]*pendingAppend
	head        uint64 // the lowest id not yet done; appends are done in id order
	failErr     error
	completions chan *pendingAppend

	index  *recentIndex
	recent *recentRecords

	judgeMu sync.Mutex
	toJudge []*pendingAppend // redeliveries waiting for the next catch-up mark
	judging []*pendingAppend // redeliveries judged once the catch-up mark on its way is read
	syncing bool             // a catch-up mark is on its way

	tailCh *amqp.Channel

	// Over the stream protocol (Options.Native): the client's connections, the producer of
	// the appends and the tail's consumer.
	// nativeMu guards them: they are replaced when the connection is lost (nativeLost),
	// each time with the next nativeGen.
	nativeMu     sync.Mutex
	env          *stream.Environment
	producer     *stream.Producer
	nativeTail   *nativeReader
	nativeGen    int
	nativeClosed bool
	// Consumers kept open for the next read of a delivery loop behind the recent records
	// (nativeRecords); cursorOpens counts those opened.
	cursorsMu     sync.Mutex
	cursors       []*nativeCursor
	cursorsClosed bool
	cursorOpens   int
	// onRecord sees every record the tail reads, before the append that wrote it is done;
	// fromFirst makes the tail start at the stream's first record.
	onRecord  func(off uint64, r record)
	fromFirst bool

	lastMu  sync.Mutex
	last    uint64        // the highest offset the tail has seen
	notify  chan struct{} // closed and replaced when last moves
	tailErr chan error

	firstMu    sync.Mutex
	first      uint64
	firstCheck time.Time

	closeOnce sync.Once
}

// record is what onRecord needs of a delivery from the stream (not the delivery itself, which
// would escape to the heap for each record).
type record struct {
	Type, MessageId string
	Body            []byte
}

// outgoing is a message for publishLoop and the append it is for.
type outgoing struct {
	msg outMsg
	p   *pendingAppend
}

// outMsg is a record as written, whichever protocol writes it.
type outMsg struct {
	Type, MessageId, ContentType string
	Body                         []byte
}

type pendingAppend struct {
	id          uint64
	fp          store.Fingerprint
	index       bool // add fp to the redelivery index once done (not for marks)
	confirmOnly bool // done at the confirm, without waiting for the tail (the start mark)
	barrier     bool // done once every earlier append is
	refused     bool // never admitted (the log had failed): it holds no slot
	// sync marks a catch-up mark: when the tail reads it, it has read every record committed
	// before the redeliveries in judging were handed to the log.
	sync bool
	// redelivery holds a redelivered event until it is judged (published or recognised).
	redelivery *redelivery
	done       func(seq uint64, dup bool, err error)
	// pooled is the buffer of the message's body, back to bodyPool once published.
	pooled *[]byte

	confirmed, seen, dup bool
	seq                  uint64
	err                  error
}

// redelivery is an event the source flagged as delivered before, with the window the
// engine allows its first copy in.
type redelivery struct {
	body  []byte
	dedup store.Window
}

func (p *pendingAppend) ready() bool {
	if p.err != nil {
		return true
	}
	if p.redelivery != nil { // not judged yet
		return false
	}
	return p.dup || p.barrier || (p.confirmed && (p.seen || p.confirmOnly))
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
	l := newLog(conn, opts)
	l.onRecord = l.observeEvent
	if err := l.start(); err != nil {
		return nil, err
	}
	return l, nil
}

// observeEvent feeds the redelivery index and the recent records.
func (l *Log) observeEvent(off uint64, d record) {
	mark := d.Type == startType
	if !mark {
		if fp, err := store.RecordFingerprint(d.Body); err == nil {
			l.index.add(fp, off, writerOf(d.MessageId))
		}
	}
	l.recent.add(off, d.Body, mark)
}

func newLog(conn *amqp.Connection, opts Options) *Log {
	opts.setDefaults()
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	l := &Log{opts: opts, conn: conn, prefix: hex.EncodeToString(mark) + ".",
		slots: make(chan struct{}, opts.Window), fifo: make(chan *pendingAppend, opts.Window),
		out:     make(chan outgoing, opts.Window),
		pubDone: make(chan struct{}), waiting: map[uint64]*pendingAppend{}, head: 1,
		completions: make(chan *pendingAppend, opts.Window),
		index:       newRecentIndex(opts.Recognised, opts.Unacked), recent: newRecentRecords(opts.Recent),
		notify: make(chan struct{}), tailErr: make(chan error, 1)}
	go l.complete()
	go l.publishLoop()
	return l
}

func (l *Log) start() error {
	if l.opts.Stream == "" {
		l.Close()
		return errors.New("streamlog: Options.Stream is required")
	}
	if err := l.open(); err != nil {
		l.Close()
		return fmt.Errorf("streamlog: opening stream %s: %w", l.opts.Stream, err)
	}
	return nil
}

func (l *Log) open() error {
	var err error
	if l.pub, err = l.conn.Channel(); err != nil {
		return err
	}
	if _, err := l.pub.QueueDeclare(l.opts.Stream, true, false, false, false, StreamArgs(l.opts)); err != nil {
		// A stream declared earlier with other limits (the retention or max_size changed since)
		// keeps them: RabbitMQ does not change a queue's arguments. Use it as it is; a policy
		// changes its limits (docs/stream-log.md).
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.PreconditionFailed {
			return err
		}
		if l.pub, err = l.conn.Channel(); err != nil {
			return err
		}
		if _, err := l.pub.QueueDeclarePassive(l.opts.Stream, true, false, false, false, nil); err != nil {
			return err
		}
	}
	if err := l.ensureWritable(); err != nil {
		return err
	}
	if l.opts.Native != nil {
		if err := l.openNative(); err != nil {
			return err
		}
	} else {
		if err := l.pub.Confirm(false); err != nil {
			return err
		}
		go l.confirmLoop(l.pub.NotifyPublish(make(chan amqp.Confirmation, l.opts.Window)))
	}

	marked := make(chan error, 1)
	markID := l.publish(outMsg{Type: startType},
		&pendingAppend{confirmOnly: true, done: func(_ uint64, _ bool, err error) { marked <- err }})
	if err := <-marked; err != nil {
		return err
	}
	var from uint64
	if !l.fromFirst {
		if from, err = l.tailStart(); err != nil {
			return err
		}
	}
	return l.startTail(from, markID)
}

// ensureWritable returns once the stream has taken a message written through a spare
// connection (Options.Spare; at once without one). RabbitMQ 3.10 creates a stream in two
// steps: its queue record first, then its writer, and only then sets the writer in the
// record. A router that declares the stream between the two (several routers starting
// together on a new stream) is answered as for a stream that exists, and its first publish
// to it makes the broker close the connection (RESOURCE_ERROR "Stream not found", or
// INTERNAL_ERROR when the record has no writer yet). The spare connection takes that loss
// instead of the log's: it is dialled again until a publish is confirmed, which means the
// record names the writer from then on. The record written is a mark, which readers skip.
func (l *Log) ensureWritable() error {
	if l.opts.Spare == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.ReadyTimeout)
	defer cancel()
	wait := probeFirstWait
	for {
		err := l.probe(ctx)
		if !errors.Is(err, errProbeConnLost) {
			return err
		}
		// The stream is still being created: its writer starts within milliseconds.
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("the stream took no message within %s: %w", l.opts.ReadyTimeout, err)
		}
		wait = min(2*wait, probeMaxWait)
	}
}

// The waits between two probes of a stream being created.
const (
	probeFirstWait = 5 * time.Millisecond
	probeMaxWait   = 500 * time.Millisecond
)

// errProbeConnLost is a probe whose connection the broker closed: the stream cannot take
// messages yet.
var errProbeConnLost = errors.New("the broker closed the connection")

// probe publishes one mark through a spare connection and waits for its confirm.
func (l *Log) probe(ctx context.Context) error {
	conn, err := l.opts.Spare(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("%w: %w", errProbeConnLost, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	if err := ch.Publish("", l.opts.Stream, false, false, amqp.Publishing{
		Type: startType, DeliveryMode: amqp.Persistent, MessageId: l.prefix + "probe",
	}); err != nil {
		return fmt.Errorf("%w: %w", errProbeConnLost, err)
	}
	var why *amqp.Error
	select {
	case c, ok := <-confirms:
		if ok && c.Ack {
			return nil
		}
		if ok {
			return errors.New("the broker refused a message to the stream")
		}
		why = <-closed // the channel is shut down: closed holds its error or is closed
	case why = <-closed:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The connection closed (the race above), or the channel alone with an error of its own,
	// such as a permission, which waiting does not cure.
	if why == nil || conn.IsClosed() || why.Code == amqp.ResourceError || why.Code == amqp.InternalError {
		return fmt.Errorf("%w: %v", errProbeConnLost, why)
	}
	return why
}

// tailStart is where the index starts reading: Recognised records before the start of the
// stream's last chunk (which holds this router's mark or something later).
func (l *Log) tailStart() (uint64, error) {
	off, err := l.readOne("last")
	if err != nil {
		return 0, err
	}
	return off - min(off, uint64(l.opts.Recognised)), nil
}

// readOne returns the offset of the first record a consumer starting at "first" or "last"
// gets.
func (l *Log) readOne(at string) (uint64, error) {
	if l.opts.Native != nil {
		spec := stream.OffsetSpecification{}.First()
		if at == "last" {
			spec = stream.OffsetSpecification{}.Last()
		}
		off, _, err := l.nativeReadOne(spec)
		return off, err
	}
	d, err := l.readDelivery(amqp.Table{"x-stream-offset": at})
	if err != nil {
		return 0, err
	}
	return offsetOf(d)
}

// readDelivery returns the first message a consumer with args gets.
func (l *Log) readDelivery(args amqp.Table) (amqp.Delivery, error) {
	ch, err := l.conn.Channel()
	if err != nil {
		return amqp.Delivery{}, err
	}
	defer ch.Close()
	if err := ch.Qos(1, 0, false); err != nil {
		return amqp.Delivery{}, err
	}
	deliveries, err := ch.Consume(l.opts.Stream, "", false, false, false, false, args)
	if err != nil {
		return amqp.Delivery{}, err
	}
	select {
	case d, ok := <-deliveries:
		if !ok {
			return amqp.Delivery{}, ErrClosed
		}
		return d, nil
	case <-time.After(l.opts.ReadyTimeout):
		return amqp.Delivery{}, fmt.Errorf("no message from the stream within %s", l.opts.ReadyTimeout)
	}
}

// offsetOf is a stream delivery's offset.
func offsetOf(d amqp.Delivery) (uint64, error) {
	if off, ok := d.Headers["x-stream-offset"].(int64); ok && off >= 0 {
		return uint64(off), nil
	}
	return 0, fmt.Errorf("delivery without an x-stream-offset header (%v)", d.Headers["x-stream-offset"])
}

// Append writes ev (whose fingerprint is fp) to the stream and calls done with its seq once
// the broker confirmed it and the tail has seen it, or with the error; calls to done come in
// append order, from one goroutine. A redelivery whose fingerprint matches an event in dedup,
// whichever router wrote it, is not written again: done gets that event's seq and dup.
func (l *Log) Append(ev *event.Event, fp store.Fingerprint, dedup store.Window, done func(seq uint64, dup bool, err error)) {
	if fp == (store.Fingerprint{}) {
		fp = store.FingerprintOf(ev) // left to the log (see router.Log)
	}
	p := &pendingAppend{fp: fp, index: true, done: done}
	if dedup.Empty() {
		buf := bodyPool.Get().(*[]byte)
		body, err := store.EncodeRecord((*buf)[:0], ev, fp)
		if err != nil {
			bodyPool.Put(buf)
			p.err = err
			l.enqueueDone(p)
			return
		}
		*buf = body
		p.pooled = buf
		l.publish(outMsg{Body: body}, p)
		return
	}
	body, err := store.EncodeRecord(nil, ev, fp)
	if err != nil {
		p.err = err
		l.enqueueDone(p)
		return
	}
	// A redelivery. If a router logged its first copy, the broker confirmed that copy before
	// it gave the message to this router, but this router's tail may not have read it yet:
	// the append keeps its place in the order and is judged once the tail has read a mark
	// written after now, which lies behind every record committed before it.
	p.redelivery = &redelivery{body: body, dedup: dedup}
	if !l.admit(p) {
		return
	}
	l.judgeMu.Lock()
	l.toJudge = append(l.toJudge, p)
	start := !l.syncing
	l.syncing = true
	l.judgeMu.Unlock()
	if start {
		l.syncMark()
	}
}

// syncMark writes a catch-up mark for the redeliveries waiting; when the tail reads it, judge
// runs. Redeliveries that arrive while it is on its way wait for the next one: one mark per
// round trip, however many redeliveries come at once.
func (l *Log) syncMark() {
	l.judgeMu.Lock()
	l.judging, l.toJudge = l.toJudge, nil
	l.judgeMu.Unlock()
	l.publish(outMsg{Type: startType},
		&pendingAppend{sync: true, done: func(uint64, bool, error) {}})
	// A mark that cannot be written fails the redeliveries it was for (markFailed).
}

// markFailed fails the redeliveries the catch-up mark on its way was written for, when that
// mark fails: judge runs only when the tail reads the mark, and a redelivery never judged
// would hold back every append after it. Redeliveries that came meanwhile get a mark of their
// own, which fails as fast while the log cannot write; it is written from its own goroutine,
// since markFailed may run in publishLoop or under pubMu, and a mark waits for a slot.
func (l *Log) markFailed(err error) {
	l.judgeMu.Lock()
	batch := l.judging
	l.judging = nil
	more := len(l.toJudge) > 0
	l.syncing = more
	l.judgeMu.Unlock()
	l.settle(func() {
		for _, p := range batch {
			if p.err == nil {
				p.err = err
			}
		}
	})
	if more {
		go l.syncMark()
	}
}

// judge settles the redeliveries the last catch-up mark was written for: a redelivery whose
// first copy the index holds, within its window and among its writer's latest events, is
// done with that copy's seq; any other is published now, in its place in the order.
func (l *Log) judge() {
	l.judgeMu.Lock()
	batch := l.judging
	l.judging = nil
	l.judgeMu.Unlock()
	for _, p := range batch {
		r := p.redelivery
		l.waitMu.Lock()
		failed := p.err != nil // by a lost connection while its mark was on its way: done
		l.waitMu.Unlock()
		if failed {
			continue
		}
		if seq, ok := l.index.lookup(p.fp); ok && r.dedup.Contains(seq) {
			l.settle(func() { p.redelivery, p.dup, p.seq = nil, true, seq })
			continue
		}
		l.pubMu.Lock()
		l.settle(func() { p.redelivery = nil })
		l.enqueueLocked(outgoing{outMsg{Body: r.body, MessageId: l.prefix + strconv.FormatUint(p.id, 10)}, p})
		l.pubMu.Unlock()
	}
	l.judgeMu.Lock()
	more := len(l.toJudge) > 0
	l.syncing = more
	l.judgeMu.Unlock()
	if more {
		l.syncMark()
	}
}

// enqueueDone takes an append that is settled without a publish through the same in-order
// completion as the others.
func (l *Log) enqueueDone(p *pendingAppend) {
	if !l.admit(p) {
		return
	}
	l.settle(func() {})
}

// admit takes a slot for p and gives it the next id of the in-order completion; false when
// the log can no longer append, p then done with the failure.
func (l *Log) admit(p *pendingAppend) bool {
	if !l.take() {
		l.refuse(p)
		return false
	}
	l.pubMu.Lock()
	l.nextID++
	p.id = l.nextID
	l.waitMu.Lock()
	l.waiting[p.id] = p
	l.waitMu.Unlock()
	failed := l.failed()
	l.pubMu.Unlock()
	if failed {
		// take may pick a free slot over a log that has failed since: fail (which holds
		// pubMu) has failed the appends waiting already, and would never see this one.
		l.settle(func() {
			if p.err == nil {
				p.err = l.failErrLocked()
			}
		})
		return false
	}
	return true
}

// failed reports whether the log can no longer append.
func (l *Log) failed() bool {
	select {
	case <-l.pubDone:
		return true
	default:
		return false
	}
}

// refuse fails an append the log can no longer take. Its done still comes after every earlier
// append's, through the completion goroutine: a caller that acknowledges through the last
// settled delivery, or stops listening after a Barrier, must never hear of an earlier append
// after a later one (RATIONALE.md, "Settlements in order across a lost log").
func (l *Log) refuse(p *pendingAppend) {
	// fail holds pubMu while it hands every append waiting to the completion goroutine; once
	// the lock is had, they are all ahead of p.
	l.pubMu.Lock()
	l.pubMu.Unlock()
	p.err, p.refused = l.failure(), true
	l.completions <- p
	if p.sync {
		l.markFailed(p.err)
	}
}

// take waits for a slot; false when the log can no longer append.
func (l *Log) take() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	case <-l.pubDone:
		return false
	}
}

// publish sends one message; p settles in id order. It returns the message id.
func (l *Log) publish(msg outMsg, p *pendingAppend) string {
	if !l.take() {
		l.refuse(p)
		return ""
	}
	l.pubMu.Lock()
	l.nextID++
	p.id = l.nextID
	msg.MessageId = l.prefix + strconv.FormatUint(p.id, 10)
	l.waitMu.Lock()
	l.waiting[p.id] = p
	l.waitMu.Unlock()
	l.enqueueLocked(outgoing{msg, p})
	l.pubMu.Unlock()
	return msg.MessageId
}

// enqueueLocked hands a message to publishLoop (never blocks: each holds a slot), or fails its
// append when the log can no longer append (fail, under the same lock, errs every append
// waiting, so none is left behind). Called with pubMu held.
func (l *Log) enqueueLocked(o outgoing) {
	select {
	case <-l.pubDone:
		l.settle(func() {
			if o.p.err == nil {
				o.p.err = ErrClosed
			}
		})
		if o.p.sync {
			l.markFailed(ErrClosed)
		}
	default:
		l.out <- o
	}
}

// publishLoop publishes the queued messages in order. What is queued at once goes out under
// one hold of the connection's writes: a burst of appends costs a few socket writes, not one
// each. Nothing in the loop waits for the broker, as a hold requires.
func (l *Log) publishLoop() {
	for {
		var o outgoing
		select {
		case o = <-l.out:
		case <-l.pubDone:
			return // fail errs the appends still queued
		}
		release := func() {}
		if l.opts.hold != nil && l.opts.Native == nil { // the stream protocol's client batches on its own
			release = l.opts.hold()
		}
		for more := true; more; {
			l.send(o)
			select {
			case o = <-l.out:
			default:
				more = false
			}
		}
		release()
	}
}

// bodyPool holds the buffers events are encoded into for a publish: amqp091-go has copied a
// body into the connection's writer when Publish returns, so the buffer is reused.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledBody bounds the buffers kept for reuse: a rare large event's is let go.
const maxPooledBody = 64 << 10

// send publishes one message and queues its append for its confirm.
func (l *Log) send(o outgoing) {
	err := ErrClosed
	select {
	case <-l.pubDone: // confirmLoop no longer takes confirms
	default:
		if l.opts.Native != nil {
			// Confirmed by message id (nativeConfirmLoop); the client copies the body. An
			// append failed meanwhile (a lost connection) is not written late.
			l.waitMu.Lock()
			failed := o.p.err
			l.waitMu.Unlock()
			err = failed
			if err == nil {
				err = l.nativeSend(o.msg)
			}
		} else {
			err = l.pub.Publish("", l.opts.Stream, false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, Type: o.msg.Type, MessageId: o.msg.MessageId,
				ContentType: o.msg.ContentType, Body: o.msg.Body})
		}
	}
	if buf := o.p.pooled; buf != nil {
		o.p.pooled = nil
		if cap(*buf) <= maxPooledBody {
			bodyPool.Put(buf)
		}
	}
	if err == nil {
		if l.opts.Native == nil {
			l.fifo <- o.p // in publish order, which is confirm order
		}
		return
	}
	err = fmt.Errorf("streamlog: append: %w", err)
	l.settle(func() {
		if o.p.err == nil {
			o.p.err = err
		}
	})
	if o.p.sync {
		l.markFailed(err)
	}
}

// settle applies change under the lock and hands every append that is ready, in id order, to
// the completion goroutine.
func (l *Log) settle(change func()) {
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	change()
	for {
		next, ok := l.waiting[l.head]
		if !ok || !next.ready() {
			return
		}
		delete(l.waiting, l.head)
		l.head++
		l.completions <- next // waits only behind refused appends (refuse), which hold no slot
	}
}

// complete calls the appends' done functions, in order, from one goroutine.
func (l *Log) complete() {
	for p := range l.completions {
		// The index learnt the seq of this router's event from the tail, before it was done.
		if !p.refused {
			<-l.slots
		}
		p.done(p.seq, p.dup, p.err)
	}
}

// confirmLoop marks each append confirmed. When the channel closes, every append not yet done
// fails: its source message is not acknowledged and the broker redelivers it.
func (l *Log) confirmLoop(confirms <-chan amqp.Confirmation) {
	for c := range confirms {
		p := <-l.fifo
		l.settle(func() {
			p.confirmed = true
			if !c.Ack {
				p.err = errRefused
			}
		})
		if !c.Ack && p.sync {
			l.markFailed(errRefused)
		}
	}
	l.fail(ErrClosed)
}

var errRefused = errors.New("streamlog: the broker refused the append")

// fail ends appending: every append not yet done gets err.
func (l *Log) fail(err error) {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	select {
	case <-l.pubDone:
		return
	default:
		close(l.pubDone)
	}
	l.waitMu.Lock()
	l.failErr = err
	for _, p := range l.waiting {
		if p.err == nil {
			p.err = err
		}
	}
	l.waitMu.Unlock()
	l.settle(func() {})
	// Wake whoever waits for the next event: there will be none from this log.
	l.lastMu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.lastMu.Unlock()
}

func (l *Log) failure() error {
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	return l.failErrLocked()
}

// failErrLocked is the error the log failed with; called with waitMu held.
func (l *Log) failErrLocked() error {
	if l.failErr != nil {
		return l.failErr
	}
	return ErrClosed
}

// startTail follows the stream from offset from, feeding the redelivery index and the recent
// records with every router's appends, settling this router's, and moving LastSeq; it returns
// once it has read up to this router's mark.
func (l *Log) startTail(from uint64, markID string) error {
	if l.opts.Native != nil {
		return l.startNativeTail(from, markID)
	}
	var err error
	if l.tailCh, err = l.conn.Channel(); err != nil {
		return err
	}
	if err := l.tailCh.Qos(tailPrefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := l.tailCh.Consume(l.opts.Stream, "", false, false, false, false, amqp.Table{"x-stream-offset": int64(from)})
	if err != nil {
		return err
	}
	caughtUp := make(chan struct{})
	go l.tail(deliveries, markID, caughtUp)
	return l.waitCaughtUp(caughtUp)
}

// waitCaughtUp waits for a new tail to read up to this router's start mark, for its error,
// or for ReadyTimeout.
func (l *Log) waitCaughtUp(caughtUp <-chan struct{}) error {
	select {
	case <-caughtUp:
		return nil
	case err := <-l.tailErr:
		return err
	case <-time.After(l.opts.ReadyTimeout):
		return fmt.Errorf("reading the latest records took longer than %s", l.opts.ReadyTimeout)
	}
}

// tailPrefetch and readPrefetch are the stream consumers' prefetch: how many records the
// broker sends ahead of the acknowledgements.
const (
	tailPrefetch = 1000
	readPrefetch = 500
)

// tailState is what the tail tracks between records.
type tailState struct {
	markID    string
	caughtUp  chan struct{}
	signalled bool
}

func (l *Log) tail(deliveries <-chan amqp.Delivery, markID string, caughtUp chan struct{}) {
	t := &tailState{markID: markID, caughtUp: caughtUp}
	n := 0
	for d := range deliveries {
		off, err := offsetOf(d)
		if err != nil {
			l.tailErr <- err
			break
		}
		l.tailRecord(t, off, record{Type: d.Type, MessageId: d.MessageId, Body: d.Body})
		// Stream consumers must acknowledge to get more (credit). Once every quarter of the
		// prefetch keeps credit left at all times; the library's delivery channel is
		// unbuffered, so "nothing more buffered" cannot be seen, and acknowledging every
		// record cost a socket write per event.
		if n++; n%(tailPrefetch/4) == 0 {
			_ = d.Ack(true)
		}
	}
	select {
	case l.tailErr <- ErrClosed:
	default:
	}
	// Without the tail no append can learn its seq.
	l.fail(ErrClosed)
}

// tailRecord takes one record the tail read: it feeds the redelivery index and the recent
// records, moves LastSeq and settles this router's append.
func (l *Log) tailRecord(t *tailState, off uint64, d record) {
	mark := d.Type == startType
	l.onRecord(off, d)
	// LastSeq moves before this router's append is settled: its caller, told the append is
	// done, must find the log already reaching it.
	l.lastMu.Lock()
	if off > l.last {
		l.last = off
		close(l.notify)
		l.notify = make(chan struct{})
	}
	l.lastMu.Unlock()
	if id, ok := strings.CutPrefix(d.MessageId, l.prefix); ok {
		if id, err := strconv.ParseUint(id, 10, 64); err == nil {
			synced := false
			l.settle(func() {
				if p := l.waiting[id]; p != nil {
					p.seen, p.seq = true, off
					synced = p.sync
				}
			})
			if synced {
				// judge publishes and may wait for a slot, which the tail frees.
				go l.judge()
			}
		}
	}
	if !t.signalled && mark && d.MessageId == t.markID {
		close(t.caughtUp)
		t.signalled = true
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

// firstRecheck is how long FirstSeq trusts what it last read: retention moves the start of
// a stream by whole segments, seldom.
const firstRecheck = time.Second

// FirstSeq is the seq of the oldest record the stream still holds (0 when it holds no event).
func (l *Log) FirstSeq() uint64 {
	l.firstMu.Lock()
	defer l.firstMu.Unlock()
	if time.Since(l.firstCheck) < firstRecheck {
		return l.first
	}
	if l.LastSeq() == 0 {
		return 0
	}
	off, err := l.readOne("first")
	if err != nil {
		// Not knowing where the stream starts must not read as an empty log (a search from 0
		// finds nothing): 1 makes a reader start at whatever the stream's first record is.
		return max(l.first, 1)
	}
	l.first, l.firstCheck = max(off, 1), time.Now()
	return l.first
}

// Read calls fn with every event from seq from onwards, in log order, following the stream
// as it grows, until ctx ends (nil), fn returns an error (that error) or the channel closes.
func (l *Log) Read(ctx context.Context, from uint64, fn func(ev *event.Event) error) error {
	return l.readRaw(ctx, from, func(off uint64, body []byte, mark bool) error {
		if mark {
			return nil
		}
		ev, _, err := store.DecodeRecord(body, off)
		if err != nil {
			return fmt.Errorf("streamlog: record at offset %d: %w", off, err)
		}
		return fn(ev)
	})
}

// readRaw calls fn with every record from offset from onwards, marks included.
func (l *Log) readRaw(ctx context.Context, from uint64, fn func(off uint64, body []byte, mark bool) error) error {
	if l.opts.Native != nil {
		return l.nativeReadRaw(ctx, from, fn)
	}
	ch, err := l.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(readPrefetch, 0, false); err != nil {
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
			if off >= from {
				if err := fn(off, d.Body, d.Type == startType); err != nil {
					return err
				}
			}
			if n++; n%(readPrefetch/4) == 0 { // as in tail
				_ = d.Ack(true)
			}
		}
	}
}

// errEnough ends a bounded read.
var errEnough = errors.New("enough")

// records calls fn with the records in [from, to], from memory when they are recent enough and
// from the stream otherwise, until fn returns false.
func (l *Log) records(from, to uint64, fn func(off uint64, body []byte, mark bool) bool) error {
	if from > to {
		return nil
	}
	next, done := l.recent.each(from, to, fn)
	if done {
		return nil
	}
	from = next // no longer in memory: the rest from the broker
	if l.opts.Native != nil {
		return l.nativeRecords(from, to, fn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.ReadyTimeout)
	defer cancel()
	err := l.readRaw(ctx, from, func(off uint64, body []byte, mark bool) error {
		if off > to || !fn(off, body, mark) || off == to {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("streamlog: reading [%d, %d] took longer than %s", from, to, l.opts.ReadyTimeout)
	}
	return err
}

// Scan visits events from seq from, looking at no more than limit records (limit <= 0: no
// limit), handing fn those keep selects by source and routing key, until fn returns false; it
// returns the seq to resume at. It reads up to LastSeq as it stands when called.
func (l *Log) Scan(from uint64, limit int, keep event.Keep, fn func(*event.Event) bool) (next uint64, err error) {
	from = max(from, 1)
	last := l.LastSeq()
	if from > last {
		return from, nil
	}
	next = from
	looked := 0
	var decodeErr error
	err = l.records(from, last, func(off uint64, body []byte, mark bool) bool {
		next = off + 1
		looked++
		if !mark {
			h, err := store.PeekHead(body, off)
			if err != nil {
				decodeErr = fmt.Errorf("streamlog: record at offset %d: %w", off, err)
				return false
			}
			if keep == nil || keep(string(h.Source), string(h.RoutingKey), event.RouteMatch{}) {
				ev, _, err := store.DecodeRecord(body, off)
				if err != nil {
					decodeErr = fmt.Errorf("streamlog: record at offset %d: %w", off, err)
					return false
				}
				if !fn(ev) {
					return false
				}
			}
		}
		return limit <= 0 || looked < limit
	})
	if err == nil {
		err = decodeErr
	}
	return next, err
}

// Get reads the event with seq seq; store.ErrNotFound when the stream does not hold one.
func (l *Log) Get(seq uint64) (*event.Event, error) {
	if seq == 0 || seq > l.LastSeq() {
		return nil, store.ErrNotFound
	}
	var ev *event.Event
	var err error
	readErr := l.records(seq, seq, func(off uint64, body []byte, mark bool) bool {
		if off == seq && !mark {
			ev, _, err = store.DecodeRecord(body, off)
		}
		return false
	})
	if readErr != nil {
		return nil, readErr
	}
	if err != nil {
		return nil, fmt.Errorf("streamlog: record at offset %d: %w", seq, err)
	}
	if ev == nil {
		return nil, store.ErrNotFound
	}
	return ev, nil
}

// ScanHeads calls fn with the head of each event in [from, to], decoding nothing else.
func (l *Log) ScanHeads(from, to uint64, fn func(store.RecordHead) error) error {
	from, to = max(from, 1), min(to, l.LastSeq())
	var fnErr error
	err := l.records(from, to, func(off uint64, body []byte, mark bool) bool {
		if mark {
			return true
		}
		h, err := store.PeekHead(body, off)
		if err != nil {
			fnErr = fmt.Errorf("streamlog: record at offset %d: %w", off, err)
			return false
		}
		if err := fn(h); err != nil {
			fnErr = err
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	return fnErr
}

// Close closes the log's channels; appends not yet done fail.
func (l *Log) Close() {
	l.closeOnce.Do(func() {
		if l.tailCh != nil {
			_ = l.tailCh.Close()
		}
		if l.pub != nil {
			_ = l.pub.Close()
		}
		if l.opts.Native != nil {
			l.closeNative() // appends not yet confirmed fail below
		}
		l.fail(ErrClosed)
	})
}

// recentIndex maps the fingerprints of the latest records to their seqs: a redelivery matching
// one of them is not written again. A redelivery of something older is written again: a
// duplicate record, never a loss.
type recentIndex struct {
	mu      sync.Mutex
	ring    []indexEntry
	next    int
	seq     map[store.Fingerprint]indexed // the latest record with that fingerprint
	written map[string]uint64             // events seen per writer (a router's message id prefix)
	unacked uint64
}

type indexEntry struct {
	fp  store.Fingerprint
	seq uint64
}

type indexed struct {
	seq    uint64
	writer string
	n      uint64 // the writer's how-manieth event
}

func newRecentIndex(size, unacked int) *recentIndex {
	return &recentIndex{ring: make([]indexEntry, 0, size), seq: make(map[store.Fingerprint]indexed, size),
		written: map[string]uint64{}, unacked: uint64(unacked)}
}

// writerOf is the prefix of a message id the log wrote: which router incarnation wrote it.
func writerOf(messageID string) string {
	if i := strings.IndexByte(messageID, '.'); i >= 0 {
		return messageID[:i+1]
	}
	return ""
}

// add records the event at seq, written by writer; the tail calls it in offset order.
func (x *recentIndex) add(fp store.Fingerprint, seq uint64, writer string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.written[writer]++
	if cur, ok := x.seq[fp]; ok && cur.seq >= seq {
		return
	}
	if len(x.ring) < cap(x.ring) {
		x.ring = append(x.ring, indexEntry{fp, seq})
	} else {
		old := x.ring[x.next]
		if x.seq[old.fp].seq == old.seq {
			delete(x.seq, old.fp)
		}
		x.ring[x.next] = indexEntry{fp, seq}
		x.next = (x.next + 1) % len(x.ring)
	}
	x.seq[fp] = indexed{seq, writer, x.written[writer]}
}

// lookup returns the seq of the latest event with fingerprint fp, if it is among the latest
// unacked events of the router that wrote it: the only ones that router can have left
// unacknowledged.
func (x *recentIndex) lookup(fp store.Fingerprint) (uint64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.seq[fp]
	if !ok || x.written[e.writer]-e.n >= x.unacked {
		return 0, false
	}
	return e.seq, true
}

// recentRecords keeps the latest records the tail read, so that delivery loops that keep up
// read them from memory rather than from the broker.
type recentRecords struct {
	mu   sync.Mutex
	ring []rawRecord // ordered by offset, oldest at start
	size int
}

type rawRecord struct {
	off  uint64
	body []byte
	mark bool
}

func newRecentRecords(size int) *recentRecords {
	return &recentRecords{ring: make([]rawRecord, 0, 2*size), size: size}
}

func (r *recentRecords) add(off uint64, body []byte, mark bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.ring); n > 0 && off <= r.ring[n-1].off {
		return
	}
	if len(r.ring) == cap(r.ring) {
		// Drop the older half in one copy rather than one record at a time.
		r.ring = append(r.ring[:0], r.ring[len(r.ring)-r.size:]...)
	}
	r.ring = append(r.ring, rawRecord{off, body, mark})
}

// eachBatch is how many records each copies out under the lock at a time.
const eachBatch = 64

// each calls fn with the records in [from, to] in order until it returns false or the records
// up to to are done (done true), or until the next one is not in memory (done false, next is
// its offset: read it from the broker). The records are immutable, so fn runs without the
// lock; they are copied out a few at a time, so that a reader that stops early (a delivery
// batch, a Get) costs what it read, not the whole range.
func (r *recentRecords) each(from, to uint64, fn func(off uint64, body []byte, mark bool) bool) (next uint64, done bool) {
	var buf [eachBatch]rawRecord
	next = from
	for next <= to {
		r.mu.Lock()
		if len(r.ring) == 0 || r.ring[0].off > next {
			r.mu.Unlock()
			return next, false
		}
		i := sort.Search(len(r.ring), func(i int) bool { return r.ring[i].off >= next })
		n := 0
		for ; i < len(r.ring) && r.ring[i].off <= to && n < len(buf); i++ {
			buf[n] = r.ring[i]
			n++
		}
		r.mu.Unlock()
		if n == 0 {
			return next, true // nothing more up to to
		}
		for _, rec := range buf[:n] {
			next = rec.off + 1
			if !fn(rec.off, rec.body, rec.mark) {
				return next, true
			}
		}
	}
	return next, true
}
