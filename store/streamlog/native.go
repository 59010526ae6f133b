package streamlog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	samqp "github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/logs"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/message"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"
)

// The stream protocol's default ports (the rabbitmq_stream plugin's listeners).
const (
	NativePort    = 5552
	NativeTLSPort = 5551
)

// Native configures appends and reads of the events over RabbitMQ's stream protocol: the
// broker appends a batch and sends a chunk in a few operations, where AMQP 0-9-1 costs it a
// queue operation per message each way (docs/stream-log.md, "Protocol"). The lease, the
// positions and the control stream stay on AMQP 0-9-1.
type Native struct {
	Host     string // as the cluster's AMQP URL names it
	Port     int
	User     string // credentials: never logged
	Password string
	VHost    string
	TLS      *tls.Config // nil: plain TCP
	// Heartbeat of the stream connections, at least 4s; 0: the client's default (60s).
	Heartbeat time.Duration
	// viaAddr makes every connection go to Host:Port, whatever node the broker names as the
	// stream's leader (tests reach the broker through a proxy).
	viaAddr bool
}

// NativeFromURL derives the stream protocol's endpoint from the cluster's AMQP URL: the same
// host, credentials and virtual host; port 5552 (5551 for amqps://) unless port is set.
func NativeFromURL(amqpURL string, tlsConfig *tls.Config, port int) (*Native, error) {
	uri, err := amqp.ParseURI(amqpURL)
	if err != nil {
		return nil, errors.New("streamlog: the cluster's url is not an AMQP url")
	}
	n := &Native{Host: uri.Host, Port: port, User: uri.Username, Password: uri.Password, VHost: uri.Vhost}
	if uri.Scheme == "amqps" {
		n.TLS = tlsConfig
		if n.TLS == nil {
			n.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: uri.Host}
		}
	}
	if n.Port == 0 {
		n.Port = NativePort
		if n.TLS != nil {
			n.Port = NativeTLSPort
		}
	}
	return n, nil
}

// minNativeHeartbeat is the shortest heartbeat the stream client accepts.
const minNativeHeartbeat = 4 * time.Second

// Addr is the stream port's host:port, for messages (it holds no credentials).
func (n *Native) Addr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

var clientLogOnce sync.Once

// clientLogger routes the stream client's log lines to slog at debug level: the log reports
// what matters through its own errors (a failed append, a lost tail), and the client writes
// to the standard logger otherwise. Its lines name brokers without passwords.
type clientLogger struct{}

func (clientLogger) Info(msg string, v ...any) {
	slog.Debug("stream client: " + fmt.Sprintf(msg, v...))
}
func (clientLogger) Error(msg string, v ...any) {
	slog.Debug("stream client: " + fmt.Sprintf(msg, v...))
}
func (clientLogger) Debug(string, ...any) {}
func (clientLogger) Warn(msg string, v ...any) {
	slog.Debug("stream client: " + fmt.Sprintf(msg, v...))
}

// dialNative opens an environment (the client's connections) on the stream port.
func dialNative(n *Native) (*stream.Environment, error) {
	clientLogOnce.Do(func() { logs.SetLogger(clientLogger{}) })
	o := stream.NewEnvironmentOptions().
		SetHost(n.Host).SetPort(n.Port).SetUser(n.User).SetPassword(n.Password).
		// The client's default 8 KiB socket buffers turn off the kernel's autotuning and
		// stall reads at about 80 KB/s (docs/stream-log.md).
		SetReadBuffer(0).SetWriteBuffer(0).
		SetMaxProducersPerClient(1).SetMaxConsumersPerClient(50)
	if n.VHost != "" {
		o.SetVHost(n.VHost)
	}
	if n.TLS != nil {
		o.IsTLS(true).SetTLSConfig(n.TLS.Clone())
	}
	if n.viaAddr {
		o.SetAddressResolver(stream.AddressResolver{Host: n.Host, Port: n.Port})
	}
	if n.Heartbeat > 0 {
		// The client refuses 3 s or less; the pairs' takeover rests on the AMQP
		// connection's heartbeat, which may be shorter.
		o.SetRequestedHeartbeat(max(n.Heartbeat, minNativeHeartbeat))
	}
	env, err := stream.NewEnvironment(o)
	if err != nil {
		// The client's errors name the broker, never the password; say which port failed.
		return nil, fmt.Errorf("connecting to the stream port %s: %w", n.Addr(), err)
	}
	return env, nil
}

// nativeType is where AMQP 0-9-1's type property lives in a stream message: RabbitMQ 3.10
// maps basic.type to and from this application property, so a mark reads the same whichever
// protocol wrote or reads it (the message id maps to properties.message-id).
const nativeType = "x-basic-type"

// nativeRecord is what the log needs of a message read over the stream protocol.
func nativeRecord(m *samqp.Message) record {
	var r record
	if m.Properties != nil {
		r.MessageId, _ = m.Properties.MessageID.(string)
	}
	if t, ok := m.ApplicationProperties[nativeType].(string); ok {
		r.Type = t
	}
	if data := m.GetData(); len(data) > 0 {
		r.Body = data
	}
	return r
}

// nativeMessage is the stream message of an outgoing record.
func nativeMessage(o outMsg) *samqp.AMQP10 {
	m := samqp.NewMessage(o.Body)
	m.Properties = &samqp.MessageProperties{MessageID: o.MessageId}
	if o.Type != "" {
		m.ApplicationProperties = map[string]any{nativeType: o.Type}
	}
	return m
}

// openNative connects to the stream port and opens the producer of the log's appends; its
// confirms settle the appends by message id (they carry no offset either: the tail gives it).
func (l *Log) openNative() error {
	env, prod, err := l.dialProducer()
	if err != nil {
		return err
	}
	// Asked for before anything is sent: a confirm that comes first is dropped.
	confirms := prod.NotifyPublishConfirmation()
	l.nativeMu.Lock()
	l.env, l.producer = env, prod
	gen := l.nativeGen
	l.nativeMu.Unlock()
	go l.nativeConfirmLoop(confirms, gen)
	// The log lives with its AMQP connection, as over AMQP 0-9-1 alone: when that closes
	// (the router's lease and positions gone with it) the appends stop too.
	connClosed := l.conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		select {
		case <-connClosed:
			l.Close()
		case <-l.pubDone:
		}
	}()
	return nil
}

// dialProducer connects and opens the producer, waiting for a stream just declared, or just
// moved to another leader, to take appends over the stream protocol.
func (l *Log) dialProducer() (*stream.Environment, *stream.Producer, error) {
	env, err := dialNative(l.opts.Native)
	if err != nil {
		return nil, nil, err
	}
	var prod *stream.Producer
	deadline := time.Now().Add(l.opts.ReadyTimeout)
	for wait := probeFirstWait; ; wait = min(2*wait, probeMaxWait) {
		prod, err = env.NewProducer(l.opts.Stream, stream.NewProducerOptions().
			SetClientProvidedName("wasmrouter/log").SetBatchSize(l.opts.Window))
		if err == nil || time.Now().After(deadline) || !retryableNative(err) {
			break
		}
		time.Sleep(wait)
	}
	if err != nil {
		_ = env.Close()
		return nil, nil, fmt.Errorf("opening a producer on the stream port %s: %w", l.opts.Native.Addr(), err)
	}
	return env, prod, nil
}

// errStreamLost fails the appends on their way when the stream protocol's connection is lost
// (the stream's leader stopped, the network broke): their sources are not acknowledged, and
// the log connects again.
var errStreamLost = errors.New("streamlog: the connection to the stream port was lost; connecting again")

// nativeLost handles the loss of the producer's or the tail's connection (generation gen):
// every append not yet done fails, and the log connects again, to the stream's leader as
// the broker names it then, its tail resuming after the last record it read. Appends fail
// at once meanwhile. If the stream port does not answer within ReadyTimeout the log fails
// for good (a Reopening opens it again).
func (l *Log) nativeLost(gen int) {
	l.nativeMu.Lock()
	if gen != l.nativeGen || l.nativeClosed {
		l.nativeMu.Unlock()
		return
	}
	l.nativeGen++
	env := l.env
	l.env, l.producer, l.nativeTail = nil, nil, nil
	l.nativeMu.Unlock()
	l.failWaiting(errStreamLost)
	if env != nil {
		_ = env.Close() // waits up to a few seconds for what the producer still holds
	}
	go l.nativeReconnect(gen + 1)
}

// failWaiting fails every append not yet done, without ending the log.
func (l *Log) failWaiting(err error) {
	l.judgeMu.Lock()
	l.toJudge, l.judging, l.syncing = nil, nil, false // failed below with the rest
	l.judgeMu.Unlock()
	l.pubMu.Lock() // no new append meanwhile: those come after, on the next connection
	defer l.pubMu.Unlock()
	l.waitMu.Lock()
	for _, p := range l.waiting {
		if p.err == nil {
			p.err = err
		}
	}
	l.waitMu.Unlock()
	l.settle(func() {})
}

// nativeReconnect connects again for generation gen until it succeeds, the log closes, or
// ReadyTimeout passes (then the log fails).
func (l *Log) nativeReconnect(gen int) {
	deadline := time.Now().Add(l.opts.ReadyTimeout)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		select {
		case <-l.pubDone:
			return
		default:
		}
		err := l.reconnectOnce(gen)
		if err == nil {
			return
		}
		if errors.Is(err, ErrClosed) || time.Now().After(deadline) {
			l.fail(ErrClosed)
			return
		}
		select {
		case <-time.After(wait):
		case <-l.pubDone:
			return
		}
	}
}

func (l *Log) reconnectOnce(gen int) error {
	env, prod, err := l.dialProducer()
	if err != nil {
		return err
	}
	l.nativeMu.Lock()
	if gen != l.nativeGen || l.nativeClosed {
		l.nativeMu.Unlock()
		_ = env.Close()
		return ErrClosed
	}
	l.env = env
	l.nativeMu.Unlock()
	// The tail goes on after the last record it read; records written meanwhile, the failed
	// appends that reached the stream among them, are read like any other.
	t := &tailState{signalled: true}
	nr, err := l.nativeConsume(stream.OffsetSpecification{}.Offset(int64(l.LastSeq()+1)), func(off uint64, r record) {
		l.tailRecord(t, off, r)
	})
	if err != nil {
		l.nativeMu.Lock()
		if l.env == env {
			l.env = nil
		}
		l.nativeMu.Unlock()
		_ = env.Close()
		return err
	}
	confirms := prod.NotifyPublishConfirmation() // before anything is sent (openNative)
	l.nativeMu.Lock()
	if gen != l.nativeGen || l.nativeClosed {
		l.nativeMu.Unlock()
		_ = env.Close()
		return ErrClosed
	}
	l.producer, l.nativeTail = prod, nr
	l.nativeMu.Unlock()
	go l.nativeConfirmLoop(confirms, gen)
	go l.watchTail(nr, gen)
	return nil
}

// watchTail reports the loss of the tail's connection.
func (l *Log) watchTail(nr *nativeReader, gen int) {
	<-nr.closed
	l.nativeLost(gen)
}

// nativeSend hands a message to the producer of the current connection. A producer whose
// connection has just gone refuses the message before nativeConfirmLoop has seen it close:
// that refusal is the lost connection too (the client gives it no error value of its own;
// besides a frame too large, kept as it is, it refuses only a message it cannot encode, which
// the log's own records never are).
func (l *Log) nativeSend(m outMsg) error {
	l.nativeMu.Lock()
	defer l.nativeMu.Unlock()
	if l.producer == nil {
		return errStreamLost
	}
	err := l.producer.Send(nativeMessage(m))
	if err != nil && !errors.Is(err, stream.FrameTooLarge) {
		return fmt.Errorf("%w (%v)", errStreamLost, err)
	}
	return err
}

// closeNative closes the stream protocol's connections for good.
func (l *Log) closeNative() {
	l.nativeMu.Lock()
	l.nativeClosed = true
	env := l.env
	l.env, l.producer, l.nativeTail = nil, nil, nil
	l.nativeMu.Unlock()
	l.closeCursors()
	if env != nil {
		_ = env.Close() // closes the producer and the consumers
	}
}

// retryableNative is an error of a stream that is still being set up.
func retryableNative(err error) bool {
	return errors.Is(err, stream.StreamNotAvailable) || errors.Is(err, stream.LeaderNotReady) ||
		errors.Is(err, stream.StreamDoesNotExist)
}

// nativeConfirmLoop marks the confirmed appends; when the producer closes (its connection
// lost), every append not yet done fails (nativeLost).
func (l *Log) nativeConfirmLoop(confirms stream.ChannelPublishConfirm, gen int) {
	for batch := range confirms {
		for _, c := range batch {
			id, ok := l.ownID(c.GetMessage())
			if !ok {
				continue
			}
			confirmed := c.IsConfirmed()
			if !confirmed {
				// Refused, or not confirmed in time (a connection that died without closing
				// its socket): connect again rather than wait on it. Not from this goroutine:
				// closing the producer hands it the statuses still pending.
				go l.nativeLost(gen)
			}
			l.settle(func() {
				if p := l.waiting[id]; p != nil {
					p.confirmed = true
					if !confirmed && p.err == nil {
						p.err = errors.New("streamlog: the broker did not confirm the append")
					}
				}
			})
		}
	}
	l.nativeLost(gen)
}

// ownID is the append a message this log wrote is for.
func (l *Log) ownID(m message.StreamMessage) (uint64, bool) {
	props := m.GetMessageProperties()
	if props == nil {
		return 0, false
	}
	s, _ := props.MessageID.(string)
	rest, ok := strings.CutPrefix(s, l.prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil
}

// nativeReader is a consumer of the stream over the stream protocol.
type nativeReader struct {
	consumer *stream.Consumer
	stopped  atomic.Bool
	closed   stream.ChannelClose
}

// nativeConsume starts a consumer at spec; fn sees each record with its offset.
func (l *Log) nativeConsume(spec stream.OffsetSpecification, fn func(off uint64, r record)) (*nativeReader, error) {
	l.nativeMu.Lock()
	env := l.env
	l.nativeMu.Unlock()
	if env == nil {
		return nil, errStreamLost
	}
	nr := &nativeReader{}
	c, err := env.NewConsumer(l.opts.Stream, func(cc stream.ConsumerContext, m *samqp.Message) {
		if nr.stopped.Load() {
			return
		}
		fn(uint64(cc.Consumer.GetOffset()), nativeRecord(m))
	}, stream.NewConsumerOptions().SetOffset(spec).SetClientProvidedName("wasmrouter/log-read"))
	if err != nil {
		return nil, fmt.Errorf("reading the stream on the stream port %s: %w", l.opts.Native.Addr(), err)
	}
	nr.consumer = c
	nr.closed = c.NotifyClose()
	return nr, nil
}

func (nr *nativeReader) close() {
	nr.stopped.Store(true)
	_ = nr.consumer.Close()
}

// nativeReadOne returns the first record a consumer at spec gets.
func (l *Log) nativeReadOne(spec stream.OffsetSpecification) (uint64, record, error) {
	type first struct {
		off uint64
		r   record
	}
	got := make(chan first, 1)
	nr, err := l.nativeConsume(spec, func(off uint64, r record) {
		select {
		case got <- first{off, r}:
		default:
		}
	})
	if err != nil {
		return 0, record{}, err
	}
	defer nr.close()
	select {
	case f := <-got:
		return f.off, f.r, nil
	case ev := <-nr.closed:
		return 0, record{}, fmt.Errorf("%w: %s", ErrClosed, ev.Reason)
	case <-time.After(l.opts.ReadyTimeout):
		return 0, record{}, fmt.Errorf("no message from the stream within %s", l.opts.ReadyTimeout)
	}
}

// nativeReadRaw is readRaw over the stream protocol.
func (l *Log) nativeReadRaw(ctx context.Context, from uint64, fn func(off uint64, body []byte, mark bool) error) error {
	type rec struct {
		off uint64
		r   record
	}
	recs := make(chan rec, readPrefetch)
	stop := make(chan struct{})
	nr, err := l.nativeConsume(stream.OffsetSpecification{}.Offset(int64(from)), func(off uint64, r record) {
		select {
		case recs <- rec{off, r}:
		case <-stop:
		}
	})
	if err != nil {
		return err
	}
	defer func() {
		close(stop) // the handler may wait to hand a record over: let it go first
		nr.close()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-nr.closed:
			return ErrClosed
		case r := <-recs:
			if r.off >= from {
				if err := fn(r.off, r.r.Body, r.r.Type == startType); err != nil {
					return err
				}
			}
		}
	}
}

// startNativeTail is startTail over the stream protocol.
func (l *Log) startNativeTail(from uint64, markID string) error {
	caughtUp := make(chan struct{})
	t := &tailState{markID: markID, caughtUp: caughtUp}
	nr, err := l.nativeConsume(stream.OffsetSpecification{}.Offset(int64(from)), func(off uint64, r record) {
		l.tailRecord(t, off, r)
	})
	if err != nil {
		return err
	}
	l.nativeMu.Lock()
	l.nativeTail = nr
	gen := l.nativeGen
	l.nativeMu.Unlock()
	go func() {
		<-nr.closed
		select {
		case l.tailErr <- ErrClosed: // Open fails while it waits for the tail
		default:
		}
		// Without the tail no append can learn its seq: connect again.
		l.nativeLost(gen)
	}()
	return l.waitCaughtUp(caughtUp)
}

// A delivery loop that has fallen behind the records kept in memory reads the stream in
// batches, each from where the one before ended. A consumer kept open between them reads
// each record once; one opened per batch received up to its credit of chunks each time,
// most of them past the batch's end and thrown away (BENCHMARKS.md, "Several routers on one
// stream").
const (
	maxIdleCursors = 4               // consumers kept for the next batch, the oldest closed first
	cursorIdle     = 5 * time.Second // an idle one is closed after this
)

// nativeCursor is a consumer kept open between reads.
type nativeCursor struct {
	nr   *nativeReader
	recs chan nativeRec
	stop chan struct{} // closed to let the handler go, the consumer closing
	next uint64        // the offset of the next record to hand out
	held *nativeRec    // received past the last read's end: the next one handed out
	idle *time.Timer
}

type nativeRec struct {
	off uint64
	r   record
}

func (c *nativeCursor) close() {
	close(c.stop) // the handler may wait to hand a record over: let it go first
	c.nr.close()
}

// openCursor starts a consumer at offset from.
func (l *Log) openCursor(from uint64) (*nativeCursor, error) {
	c := &nativeCursor{recs: make(chan nativeRec, readPrefetch), stop: make(chan struct{}), next: from}
	nr, err := l.nativeConsume(stream.OffsetSpecification{}.Offset(int64(from)), func(off uint64, r record) {
		// Blocking here holds the consumer's own dispatch, never the connection: the client
		// buffers more chunks than the broker sends ahead of its credit.
		select {
		case c.recs <- nativeRec{off, r}:
		case <-c.stop:
		}
	})
	if err != nil {
		return nil, err
	}
	c.nr = nr
	l.cursorsMu.Lock()
	l.cursorOpens++
	l.cursorsMu.Unlock()
	return c, nil
}

// takeCursor returns the idle cursor whose next record is at from, if any; whoever removes
// a cursor from the idle list under the lock owns it.
func (l *Log) takeCursor(from uint64) *nativeCursor {
	l.cursorsMu.Lock()
	defer l.cursorsMu.Unlock()
	for i, c := range l.cursors {
		if c.next == from {
			l.cursors = append(l.cursors[:i], l.cursors[i+1:]...)
			c.idle.Stop()
			return c
		}
	}
	return nil
}

// putCursor keeps c for the next read, closing the oldest idle one beyond maxIdleCursors.
func (l *Log) putCursor(c *nativeCursor) {
	var evicted *nativeCursor
	l.cursorsMu.Lock()
	if l.cursorsClosed {
		l.cursorsMu.Unlock()
		c.close()
		return
	}
	if len(l.cursors) == maxIdleCursors {
		evicted = l.cursors[0]
		l.cursors = append(l.cursors[:0], l.cursors[1:]...)
		evicted.idle.Stop()
	}
	l.cursors = append(l.cursors, c)
	c.idle = time.AfterFunc(cursorIdle, func() { l.expireCursor(c) })
	l.cursorsMu.Unlock()
	if evicted != nil {
		evicted.close()
	}
}

// expireCursor closes c if it is still idle.
func (l *Log) expireCursor(c *nativeCursor) {
	l.cursorsMu.Lock()
	i := slices.Index(l.cursors, c)
	if i >= 0 {
		l.cursors = append(l.cursors[:i], l.cursors[i+1:]...)
	}
	l.cursorsMu.Unlock()
	if i >= 0 {
		c.close()
	}
}

// closeCursors closes the idle cursors, and those in use as they are put back.
func (l *Log) closeCursors() {
	l.cursorsMu.Lock()
	cs := l.cursors
	l.cursors, l.cursorsClosed = nil, true
	l.cursorsMu.Unlock()
	for _, c := range cs {
		c.idle.Stop()
		c.close()
	}
}

// nativeRecords is the part of records read from the broker over the stream protocol: fn
// sees the records in [from, to] until it returns false.
func (l *Log) nativeRecords(from, to uint64, fn func(off uint64, body []byte, mark bool) bool) error {
	c := l.takeCursor(from)
	if c != nil {
		select {
		case <-c.nr.closed: // its connection was lost while it was idle
			c.close()
			c = nil
		default:
		}
	}
	if c == nil {
		var err error
		if c, err = l.openCursor(from); err != nil {
			return err
		}
	}
	timeout := time.NewTimer(l.opts.ReadyTimeout)
	defer timeout.Stop()
	for {
		var r nativeRec
		if c.held != nil {
			r, c.held = *c.held, nil
		} else {
			select {
			case r = <-c.recs:
			case <-c.nr.closed:
				c.close()
				return ErrClosed
			case <-timeout.C:
				c.close()
				return fmt.Errorf("streamlog: reading [%d, %d] took longer than %s", from, to, l.opts.ReadyTimeout)
			}
		}
		if r.off < c.next {
			continue // a new consumer starts at the chunk that holds from
		}
		if r.off > to {
			c.held = &r
			l.putCursor(c)
			return nil
		}
		c.next = r.off + 1
		if !fn(r.off, r.r.Body, r.r.Type == startType) || r.off == to {
			l.putCursor(c)
			return nil
		}
	}
}
