// Package amqpx is the broker layer on amqp091-go: two reconnecting connections per cluster (one
// to consume, one to publish), the source consumer and the confirm-mode publisher, and the
// conversions between AMQP messages and events that keep every header's AMQP type.
package amqpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// Options tune a Cluster. Zero values take the defaults.
type Options struct {
	Backoff     time.Duration // first reconnect delay bound, default 100ms
	MaxBackoff  time.Duration // largest reconnect delay bound, default 10s; delays use full jitter
	Logger      *slog.Logger
	Metrics     *Metrics      // may be nil
	DialTimeout time.Duration // TCP, TLS and AMQP handshake, default 15s
	Heartbeat   time.Duration // default: the library's (10s), unless the URL sets one
	// Only makes the cluster hold one connection, with this role in its name, for consuming
	// and publishing alike (the event log on a stream uses "log"). Default: two connections,
	// RoleConsume and RolePublish.
	Only string
}

func (o *Options) setDefaults() {
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(10*time.Second, o.Backoff)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// closeTimeout bounds the close handshake when Run ends, so that a dead network cannot hold up
// shutdown.
const closeTimeout = 5 * time.Second

// The roles of a cluster's two connections (event.ConnectionStatus.Role). Consuming and publishing do not share a
// connection: the broker blocks a connection that publishes during a resource alarm (and with
// it the acknowledgements it would carry), and the client drops a whole connection over a
// frame it cannot decode; either would otherwise stall the other side.
const (
	RoleConsume = event.RoleConsume
	RolePublish = event.RolePublish
)

// link is one of the cluster's connections and its state, guarded by the cluster's mutex.
type link struct {
	role       string
	conn       *amqp.Connection // nil while down
	batch      *batchConn       // conn's writer
	channels   *channelCount    // channels the router holds open on conn
	lastErr    string
	since      time.Time
	reconnects uint64
	blocked    string // the broker's reason while it blocks publishing on the connection
}

// Cluster is one logical connection to a RabbitMQ cluster: a consuming and a publishing AMQP
// connection, each kept up by Run. Everything else may be called from any goroutine.
type Cluster struct {
	name     string
	redacted string
	dial     dialer
	opts     Options
	log      *slog.Logger

	mu      sync.Mutex
	consume *link
	publish *link         // the same as consume with Options.Only
	changed chan struct{} // closed on the next transition of either connection
	hooks   []func(*amqp.Connection) error
	lastErr string // the latest error of either connection
	running bool

	pool pubPool // the publishing connection's confirm-mode channels

	publishers atomic.Int64 // TargetPublishers open on this cluster: a reload retires it at 0
}

// NewCluster checks the spec and prepares the connections; it does not dial. The TLS files are
// read here, so a missing or bad file is reported at start-up.
func NewCluster(spec config.ClusterSpec, opts Options) (*Cluster, error) {
	opts.setDefaults()
	d, err := newDialer(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", spec.Name, err)
	}
	c := &Cluster{
		name:     spec.Name,
		redacted: config.RedactURL(spec.URL),
		dial:     d,
		opts:     opts,
		changed:  make(chan struct{}),
		consume:  &link{role: RoleConsume},
		publish:  &link{role: RolePublish},
	}
	if opts.Only != "" {
		c.consume = &link{role: opts.Only}
		c.publish = c.consume
	}
	c.log = opts.Logger.With("cluster", spec.Name)
	if m := opts.Metrics; m != nil {
		m.BrokerConnected.WithLabelValues(spec.Name).Set(0)
		m.BrokerReconnects.WithLabelValues(spec.Name).Add(0)
	}
	return c, nil
}

// Name is the cluster block's name.
func (c *Cluster) Name() string { return c.name }

// Endpoint is the cluster's URL as configured (it holds the password: never print it) and
// the TLS configuration of an amqps:// one (nil otherwise), for the connections of another
// protocol to the same brokers (the stream protocol of a log on a stream).
func (c *Cluster) Endpoint() (url string, tlsConfig *tls.Config) {
	if c.dial.tls != nil {
		tlsConfig = c.dial.tls.Clone()
	}
	return c.dial.spec, tlsConfig
}

// stableConnection is how long a connection must have served for its loss to count as a
// fresh start rather than one more failure in a row.
const stableConnection = time.Second

// Run keeps both connections up until ctx ends: each is dialled, watched and reconnected with
// exponential backoff and full jitter on its own; then they are closed. Only one Run may be
// active at a time.
func (c *Cluster) Run(ctx context.Context) {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		c.log.Error("cluster is already running")
		return
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	var wg sync.WaitGroup
	for _, l := range c.links() {
		wg.Add(1)
		go func() { defer wg.Done(); c.runLink(ctx, l) }()
	}
	wg.Wait()
}

// links are the cluster's connections: two, or one with Options.Only.
func (c *Cluster) links() []*link {
	if c.consume == c.publish {
		return []*link{c.consume}
	}
	return []*link{c.consume, c.publish}
}

// runLink keeps one connection up until ctx ends.
func (c *Cluster) runLink(ctx context.Context, l *link) {
	log := c.log.With("connection", l.role)
	failures := 0
	for ctx.Err() == nil {
		conn, err := c.connect(ctx, l)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.setError(l, err)
			log.Warn("cannot connect to the broker", "url", c.redacted, "err", explainDialError(err),
				"attribute", "cluster."+c.name+".url", "hint", "router validate --connect checks the url, credentials and permissions")
			if !backoff.Sleep(ctx, c.backoff(failures)) {
				return
			}
			continue
		}
		log.Info("connected to the broker", "url", c.redacted, "channel_max", conn.Config.ChannelMax)
		up := time.Now()
		err = c.serve(ctx, l, conn)
		if ctx.Err() != nil {
			return
		}
		log.Warn("connection to the broker lost", "url", c.redacted, "err", err)
		// A connection that drops because of a message the client cannot decode, or at once
		// after it came up, must not make us redial in a tight loop; one that served for a
		// while and was closed (by an operator, a broker restart) is redialled at once.
		if time.Since(up) >= stableConnection && !IsDecodeError(err) {
			failures = 0
		} else {
			failures++
		}
		if !backoff.Sleep(ctx, c.backoff(failures)) {
			return
		}
	}
}

// connect dials one connection and, for the publishing one, runs the OnConnect hooks; then it
// publishes the connection.
func (c *Cluster) connect(ctx context.Context, l *link) (*amqp.Connection, error) {
	conn, batch, err := c.dial.dial(ctx, l.role)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.name, err)
	}
	done := 0
	for {
		c.mu.Lock()
		var pending []func(*amqp.Connection) error
		if l == c.publish {
			pending = c.hooks[done:]
		}
		if len(pending) == 0 {
			c.setUpLocked(l, conn, batch)
			c.mu.Unlock()
			return conn, nil
		}
		pending = append([]func(*amqp.Connection) error(nil), pending...)
		c.mu.Unlock()
		for _, fn := range pending {
			if err := fn(conn); err != nil {
				_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
				return nil, fmt.Errorf("cluster %s: on connect: %w", c.name, err)
			}
		}
		done += len(pending)
	}
}

// serve waits until the connection closes or ctx ends, and marks it down.
func (c *Cluster) serve(ctx context.Context, l *link, conn *amqp.Connection) error {
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	for {
		select {
		case <-ctx.Done():
			_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
			c.setDown(l, conn, nil)
			return ctx.Err()
		case b, ok := <-blocks:
			if !ok {
				blocks = nil
				continue
			}
			c.setBlocked(l, b)
		case e, ok := <-closes:
			var err error = errors.New("connection closed")
			if ok && e != nil {
				err = e
			}
			c.setDown(l, conn, err)
			return err
		}
	}
}

// broadcastLocked wakes everyone waiting on a transition.
func (c *Cluster) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// upLocked reports whether both connections are up.
func (c *Cluster) upLocked() bool {
	return c.consume.conn != nil && c.publish.conn != nil
}

func (c *Cluster) setUpLocked(l *link, conn *amqp.Connection, batch *batchConn) {
	l.conn, l.batch, l.channels = conn, batch, &channelCount{}
	l.since = time.Now()
	l.reconnects++
	c.broadcastLocked()
	if m := c.opts.Metrics; m != nil {
		if c.upLocked() {
			m.BrokerConnected.WithLabelValues(c.name).Set(1)
		}
		m.BrokerReconnects.WithLabelValues(c.name).Inc()
	}
}

// setDown marks a connection down, with why (nil: it was closed on purpose) in the same step,
// so that no one sees it down without a reason.
func (c *Cluster) setDown(l *link, conn *amqp.Connection, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if why != nil {
		l.lastErr = why.Error()
		c.lastErr = l.role + " connection: " + why.Error()
	}
	if l.conn != conn {
		return
	}
	l.conn, l.batch, l.channels = nil, nil, nil
	l.since = time.Time{}
	l.blocked = ""
	c.broadcastLocked()
	if m := c.opts.Metrics; m != nil {
		m.BrokerConnected.WithLabelValues(c.name).Set(0)
	}
}

func (c *Cluster) setBlocked(l *link, b amqp.Blocking) {
	log := c.log.With("connection", l.role)
	if b.Active {
		log.Warn("broker blocked the connection: publishing waits", "reason", b.Reason)
		if b.Reason == "" {
			b.Reason = "no reason given"
		}
	} else {
		log.Info("broker unblocked the connection")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l.blocked = ""
	if b.Active {
		l.blocked = b.Reason
	}
	// Publishers waiting for the block to lift (WaitPublishable) look again.
	c.broadcastLocked()
}

// Publishable reports whether a publish can go out now: the publishing connection is up and
// not blocked.
func (c *Cluster) Publishable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.publish.conn != nil && c.publish.blocked == ""
}

// WaitPublishable blocks until the publishing connection is up and the broker does not block
// publishing on it (a memory or disk alarm), or ctx ends.
func (c *Cluster) WaitPublishable(ctx context.Context) error {
	for {
		c.mu.Lock()
		ok, changed := c.publish.conn != nil && c.publish.blocked == "", c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: %w: %w", c.name, ErrNotConnected, ctx.Err())
		case <-changed:
		}
	}
}

// blockedReason reports whether the broker blocks publishing on the publishing connection, and
// why.
func (c *Cluster) blockedReason() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.publish.blocked, c.publish.blocked != ""
}

func (c *Cluster) setError(l *link, err error) {
	c.mu.Lock()
	l.lastErr = err.Error()
	c.lastErr = l.role + " connection: " + err.Error()
	c.mu.Unlock()
}

// backoff is the delay before attempt n (n >= 1): uniform in [0, min(MaxBackoff, Backoff*2^(n-1))].
func (c *Cluster) backoff(n int) time.Duration {
	return backoff.FullJitter(backoff.Exponential(c.opts.Backoff, c.opts.MaxBackoff, n))
}

// current is the live connection of the role's link, or nil.
func (c *Cluster) current(l *link) (*amqp.Connection, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.conn != nil && l.conn.IsClosed() {
		return nil, c.changed
	}
	return l.conn, c.changed
}

// currentBatch is the live publishing connection's writer, or nil.
func (c *Cluster) currentBatch() *batchConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.publish.batch
}

// returnCountsOf is the return frame counts of conn, one of this cluster's connections, or nil.
func (c *Cluster) returnCountsOf(conn *amqp.Connection) *returnCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range []*link{c.consume, c.publish} {
		if l.conn == conn && conn != nil && l.batch != nil {
			return &l.batch.returns
		}
	}
	return nil
}

// Hold makes the writes on conn, one of this cluster's connections, wait in its buffer until
// release (or until batchLimit bytes wait), so that a burst of publishes goes out in a few
// writes. As with Publisher.Hold: around writes only, never around anything that waits for the
// broker, since every channel's writes and the heartbeats on conn wait too.
func (c *Cluster) Hold(conn *amqp.Connection) (release func()) {
	c.mu.Lock()
	var b *batchConn
	for _, l := range []*link{c.consume, c.publish} {
		if l.conn == conn && conn != nil {
			b = l.batch
		}
	}
	c.mu.Unlock()
	if b == nil {
		return func() {}
	}
	b.hold()
	return b.release
}

// Connection returns the live consuming connection, waiting until there is one or ctx ends.
// Callers open their own channels on it (through OpenChannel, so that they are counted) and
// must expect it to close at any time.
func (c *Cluster) Connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		conn, changed := c.current(c.consume)
		if conn != nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster %s: %w: %w", c.name, ErrNotConnected, ctx.Err())
		case <-changed:
		}
	}
}

// Dial opens one more connection to the cluster, named for role, outside Run's care: for a
// short task that may cost the broker closing its connection (the caller closes it).
func (c *Cluster) Dial(ctx context.Context, role string) (*amqp.Connection, error) {
	conn, _, err := c.dial.dial(ctx, role)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.name, err)
	}
	return conn, nil
}

// Connected reports whether both connections are up.
func (c *Cluster) Connected() bool {
	consume, _ := c.current(c.consume)
	publish, _ := c.current(c.publish)
	return consume != nil && publish != nil
}

// Changed returns a channel that is closed on the next connect, disconnect, block or unblock of
// either connection. It is a broadcast: call Changed again after it fires to wait for the
// following one.
func (c *Cluster) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// OnConnect registers fn to run on the publishing connection after every (re)connect, before the
// connection is handed out (to declare target exchanges, for example). If fn fails, the error is
// logged and the connection is dropped and retried. Registered while connected, fn also runs at
// once on the live connection, in the caller's goroutine.
func (c *Cluster) OnConnect(fn func(*amqp.Connection) error) {
	c.mu.Lock()
	c.hooks = append(c.hooks, fn)
	conn := c.publish.conn
	c.mu.Unlock()
	if conn == nil {
		return
	}
	if err := fn(conn); err != nil {
		c.log.Warn("on connect hook failed: reconnecting", "err", err)
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
	}
}

// Status is a snapshot of both connections' state.
func (c *Cluster) Status() event.ClusterStatus {
	publishers, shared := c.pool.usage()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := event.ClusterStatus{Name: c.name, Connected: true, Blocked: c.publish.blocked, LastError: c.lastErr, URL: c.redacted}
	for _, l := range c.links() {
		cs := event.ConnectionStatus{
			Role: l.role, Connected: l.conn != nil && !l.conn.IsClosed(), Blocked: l.blocked,
			LastError: l.lastErr, ConnectedSince: l.since, Reconnects: l.reconnects,
		}
		if l.conn != nil && !cs.Connected && cs.LastError == "" {
			// The library has closed the connection; serve is about to record why.
			cs.LastError = "connection closed"
		}
		if cs.Connected {
			cs.ChannelMax = int(l.conn.Config.ChannelMax)
			cs.Channels = l.channels.load()
		}
		if l == c.publish {
			cs.Publishers, cs.SharedChannels = publishers, shared
		}
		st.Connected = st.Connected && cs.Connected
		st.Reconnects += l.reconnects
		if l.since.After(st.ConnectedSince) {
			st.ConnectedSince = l.since
		}
		if st.LastError == "" {
			st.LastError = cs.LastError
		}
		st.Connections = append(st.Connections, cs)
	}
	if !st.Connected {
		st.ConnectedSince = time.Time{}
	}
	return st
}

// channelCount counts the channels the router holds open on one connection.
type channelCount struct {
	mu sync.Mutex
	n  int
}

func (n *channelCount) load() int {
	if n == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.n
}

func (n *channelCount) add(d int) {
	n.mu.Lock()
	n.n += d
	n.mu.Unlock()
}

// OpenChannel opens a channel on conn, one of the cluster's connections, and counts it while
// it is open (Status). When the connection's negotiated channel_max is reached, the error says
// so.
func (c *Cluster) OpenChannel(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if errors.Is(err, amqp.ErrChannelMax) {
		return nil, fmt.Errorf("%w: the connection's channel_max (%d, negotiated with the broker) is reached", err, conn.Config.ChannelMax)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	var count *channelCount
	for _, l := range c.links() {
		if l.conn == conn {
			count = l.channels
		}
	}
	c.mu.Unlock()
	if count != nil {
		count.add(1)
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		go func() {
			<-closed
			count.add(-1)
		}()
	}
	return ch, nil
}
