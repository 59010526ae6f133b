// Package amqpx is the broker layer on amqp091-go: a reconnecting connection per cluster, the
// source consumer and the confirm-mode publisher, and the conversions between AMQP messages and
// events that keep every header's AMQP type.
package amqpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
)

// Options tune a Cluster. Zero values take the defaults.
type Options struct {
	Backoff     time.Duration // first reconnect delay bound, default 100ms
	MaxBackoff  time.Duration // largest reconnect delay bound, default 10s; delays use full jitter
	Logger      *slog.Logger
	Metrics     *metrics.Metrics // may be nil
	DialTimeout time.Duration    // TCP, TLS and AMQP handshake, default 15s
	Heartbeat   time.Duration    // default: the library's (10s), unless the URL sets one
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

// Cluster is one logical connection to a RabbitMQ cluster. Run keeps it up; everything else
// may be called from any goroutine.
type Cluster struct {
	name     string
	redacted string
	dial     dialer
	opts     Options
	log      *slog.Logger

	mu         sync.Mutex
	conn       *amqp.Connection // nil while down
	batch      *batchConn       // conn's writer
	changed    chan struct{}    // closed on the next transition
	hooks      []func(*amqp.Connection) error
	lastErr    string
	since      time.Time
	reconnects uint64
	running    bool
	blocked    string // the broker's reason while it blocks publishing on the connection
}

// Status is a snapshot for the admin API; URL is redacted.
type Status struct {
	Name           string    `json:"name"`
	Connected      bool      `json:"connected"`
	Blocked        string    `json:"blocked,omitempty"` // why the broker blocks publishing, while it does
	LastError      string    `json:"last_error"`
	ConnectedSince time.Time `json:"connected_since,omitzero"` // zero while down
	Reconnects     uint64    `json:"reconnects"`               // connections established, the first included
	URL            string    `json:"url"`
}

// NewCluster checks the spec and prepares the connection; it does not dial. The TLS files are
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

// stableConnection is how long a connection must have served for its loss to count as a
// fresh start rather than one more failure in a row.
const stableConnection = time.Second

// Run dials, watches the connection and reconnects with exponential backoff and full jitter
// until ctx ends; then it closes the connection. Only one Run may be active at a time.
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

	failures := 0
	for ctx.Err() == nil {
		conn, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.setError(err)
			c.log.Warn("cannot connect to the broker", "url", c.redacted, "err", explainDialError(err),
				"attribute", "cluster."+c.name+".url", "hint", "router validate --connect checks the url, credentials and permissions")
			if !sleep(ctx, c.backoff(failures)) {
				return
			}
			continue
		}
		up := time.Now()
		err = c.serve(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("connection to the broker lost", "url", c.redacted, "err", err)
		// A connection that drops because of a message the client cannot decode, or at once
		// after it came up, must not make us redial in a tight loop; one that served for a
		// while and was closed (by an operator, a broker restart) is redialled at once.
		if time.Since(up) >= stableConnection && !IsDecodeError(err) {
			failures = 0
		} else {
			failures++
		}
		if !sleep(ctx, c.backoff(failures)) {
			return
		}
	}
}

// connect dials and runs the OnConnect hooks, then publishes the connection.
func (c *Cluster) connect(ctx context.Context) (*amqp.Connection, error) {
	conn, batch, err := c.dial.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.name, err)
	}
	done := 0
	for {
		c.mu.Lock()
		pending := c.hooks[done:]
		if len(pending) == 0 {
			c.setUpLocked(conn, batch)
			c.mu.Unlock()
			c.log.Info("connected to the broker", "url", c.redacted)
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

// serve waits until the connection closes or ctx ends, and marks the cluster down.
func (c *Cluster) serve(ctx context.Context, conn *amqp.Connection) error {
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	for {
		select {
		case <-ctx.Done():
			_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
			c.setDown(conn, nil)
			return ctx.Err()
		case b, ok := <-blocks:
			if !ok {
				blocks = nil
				continue
			}
			c.setBlocked(b)
		case e, ok := <-closes:
			var err error = errors.New("connection closed")
			if ok && e != nil {
				err = e
			}
			c.setDown(conn, err)
			return err
		}
	}
}

func (c *Cluster) setUpLocked(conn *amqp.Connection, batch *batchConn) {
	c.conn, c.batch = conn, batch
	c.since = time.Now()
	c.reconnects++
	close(c.changed)
	c.changed = make(chan struct{})
	if m := c.opts.Metrics; m != nil {
		m.BrokerConnected.WithLabelValues(c.name).Set(1)
		m.BrokerReconnects.WithLabelValues(c.name).Inc()
	}
}

// setDown marks the cluster down, with why (nil: it was closed on purpose) in the same step,
// so that no one sees it down without a reason.
func (c *Cluster) setDown(conn *amqp.Connection, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if why != nil {
		c.lastErr = why.Error()
	}
	if c.conn != conn {
		return
	}
	c.conn, c.batch = nil, nil
	c.since = time.Time{}
	c.blocked = ""
	close(c.changed)
	c.changed = make(chan struct{})
	if m := c.opts.Metrics; m != nil {
		m.BrokerConnected.WithLabelValues(c.name).Set(0)
	}
}

func (c *Cluster) setBlocked(b amqp.Blocking) {
	if b.Active {
		c.log.Warn("broker blocked the connection: publishing waits", "reason", b.Reason)
		if b.Reason == "" {
			b.Reason = "no reason given"
		}
	} else {
		c.log.Info("broker unblocked the connection")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = ""
	if b.Active {
		c.blocked = b.Reason
	}
	// Publishers waiting for the block to lift (WaitPublishable) look again.
	close(c.changed)
	c.changed = make(chan struct{})
}

// Publishable reports whether a publish can go out now: connected and not blocked.
func (c *Cluster) Publishable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil && c.blocked == ""
}

// WaitPublishable blocks until the cluster is connected and the broker does not block
// publishing on the connection (a memory or disk alarm), or ctx ends.
func (c *Cluster) WaitPublishable(ctx context.Context) error {
	for {
		c.mu.Lock()
		ok, changed := c.conn != nil && c.blocked == "", c.changed
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

// blockedReason reports whether the broker blocks publishing on the connection, and why.
func (c *Cluster) blockedReason() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked, c.blocked != ""
}

func (c *Cluster) setError(err error) {
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

// backoff is the delay before attempt n (n >= 1): uniform in [0, min(MaxBackoff, Backoff*2^(n-1))].
func (c *Cluster) backoff(n int) time.Duration {
	d := c.opts.Backoff
	for i := 1; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// current is the live connection or nil.
func (c *Cluster) current() (*amqp.Connection, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.conn.IsClosed() {
		return nil, c.changed
	}
	return c.conn, c.changed
}

// currentBatch is the live connection's writer, or nil.
func (c *Cluster) currentBatch() *batchConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batch
}

// Connection returns the live connection, waiting until there is one or ctx ends. Callers open
// their own channels on it and must expect it to close at any time.
func (c *Cluster) Connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		conn, changed := c.current()
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

// Connected reports whether the connection is up.
func (c *Cluster) Connected() bool {
	conn, _ := c.current()
	return conn != nil
}

// Changed returns a channel that is closed on the next connect, disconnect, block or unblock. It is a
// broadcast: call Changed again after it fires to wait for the following one.
func (c *Cluster) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// OnConnect registers fn to run after every (re)connect, before the connection is handed out
// (to declare target exchanges, for example). If fn fails, the error is logged and the
// connection is dropped and retried. Registered while connected, fn also runs at once on the
// live connection, in the caller's goroutine.
func (c *Cluster) OnConnect(fn func(*amqp.Connection) error) {
	c.mu.Lock()
	c.hooks = append(c.hooks, fn)
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return
	}
	if err := fn(conn); err != nil {
		c.log.Warn("on connect hook failed: reconnecting", "err", err)
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
	}
}

// Status is a snapshot of the connection state.
func (c *Cluster) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Name:           c.name,
		Connected:      c.conn != nil && !c.conn.IsClosed(),
		Blocked:        c.blocked,
		LastError:      c.lastErr,
		ConnectedSince: c.since,
		Reconnects:     c.reconnects,
		URL:            c.redacted,
	}
	if c.conn != nil && !st.Connected && st.LastError == "" {
		// The library has closed the connection; serve is about to record why.
		st.LastError = "connection closed"
	}
	return st
}
