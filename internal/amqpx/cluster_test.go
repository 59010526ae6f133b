package amqpx

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

func TestClusterConnectsReportsAndReconnects(t *testing.T) {
	rabbit.SkipIfShort(t)
	m := NewMetrics(prometheus.NewRegistry())
	var logs logBuffer
	opts := fastOptions(logs.logger())
	opts.Metrics = m
	c := startCluster(t, rabbit.URL(), opts)
	name := c.Name()

	// rabbitmqctl is slow on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitConnected(t, c, true)
	conn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if !st.Connected || st.Reconnects != 2 || st.ConnectedSince.IsZero() || st.Name != name || len(st.Connections) != 2 {
		t.Fatalf("status after connect: %+v", st)
	}
	for _, cs := range st.Connections {
		if !cs.Connected || cs.Reconnects != 1 || cs.ChannelMax == 0 {
			t.Fatalf("%s connection after connect: %+v", cs.Role, cs)
		}
	}
	if u, _ := url.Parse(rabbit.URL()); u.User != nil {
		if pw, ok := u.User.Password(); ok && strings.Contains(st.URL, ":"+pw+"@") {
			t.Fatalf("status URL shows the password: %s", st.URL)
		}
	}
	if v := testutil.ToFloat64(m.BrokerConnected.WithLabelValues(name)); v != 1 {
		t.Fatalf("router_broker_connected = %v", v)
	}

	// Losing the publishing connection leaves the consuming one alone.
	changed := c.Changed()
	if n := rabbit.CloseConnections(t, ConnectionName(name, RolePublish)); n != 1 {
		t.Fatalf("closed %d connections named %s", n, ConnectionName(name, RolePublish))
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("Changed did not fire on disconnect")
	}
	waitFor(t, "the publishing connection back", 30*time.Second, func() bool {
		return c.Connected() && c.Status().Connections[1].Reconnects == 2
	})
	if conn.IsClosed() {
		t.Fatal("closing the publishing connection closed the consuming one")
	}
	if again, err := c.Connection(ctx); err != nil || again != conn {
		t.Fatalf("Connection after the publishing connection's loss: %v, same connection %v", err, again == conn)
	}

	// And the other way round.
	if n := rabbit.CloseConnections(t, ConnectionName(name, RoleConsume)); n != 1 {
		t.Fatalf("closed %d connections named %s", n, ConnectionName(name, RoleConsume))
	}
	waitFor(t, "a new consuming connection", 30*time.Second, func() bool {
		conn2, err := c.Connection(ctx)
		return err == nil && conn2 != conn && c.Connected()
	})
	st = c.Status()
	if st.Reconnects != 4 || !strings.Contains(st.LastError, "CONNECTION_FORCED") || st.Connections[1].Reconnects != 2 {
		t.Fatalf("status after reconnects: %+v", st)
	}
	if v := testutil.ToFloat64(m.BrokerReconnects.WithLabelValues(name)); v != 4 {
		t.Fatalf("router_broker_reconnects_total = %v", v)
	}
	if !strings.Contains(logs.String(), "connection to the broker lost") {
		t.Fatalf("disconnect not logged:\n%s", logs.String())
	}
}

func TestClusterFollowsProxyCuts(t *testing.T) {
	rabbit.SkipIfShort(t)
	p := tcpproxy.Start(t, rabbit.Addr(t))
	m := NewMetrics(prometheus.NewRegistry())
	opts := fastOptions(nil)
	opts.Metrics = m
	c := startCluster(t, rabbit.URLVia(t, p.Addr()), opts)
	waitConnected(t, c, true)

	changed := c.Changed()
	p.Cut()
	<-changed
	waitBothDown(t, c)
	if v := testutil.ToFloat64(m.BrokerConnected.WithLabelValues(c.Name())); v != 0 {
		t.Fatalf("router_broker_connected = %v while down", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := c.Connection(ctx)
	cancel()
	if !errors.Is(err, ErrNotConnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connection while down: %v", err)
	}
	if c.Status().LastError == "" {
		t.Fatal("no LastError while down")
	}

	p.Restore()
	waitConnected(t, c, true)
}

func TestOnConnectHooks(t *testing.T) {
	rabbit.SkipIfShort(t)
	p := tcpproxy.Start(t, rabbit.Addr(t))
	c, err := NewCluster(config.ClusterSpec{Name: rabbit.Unique("c"), URL: rabbit.URLVia(t, p.Addr())}, fastOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	var calls, failures atomic.Int32
	c.OnConnect(func(conn *amqp.Connection) error {
		calls.Add(1)
		if failures.Add(1) <= 2 {
			return errors.New("declare failed")
		}
		return nil
	})
	runCluster(t, c)
	waitConnected(t, c, true)
	if n := calls.Load(); n != 3 {
		t.Fatalf("hook ran %d times, want 3 (two failures, then success)", n)
	}
	if st := c.Status(); !strings.Contains(st.LastError, "declare failed") || st.Connections[1].Reconnects != 1 {
		t.Fatalf("status: %+v", st)
	}

	// A hook added while connected runs at once on the live connection.
	var late atomic.Int32
	c.OnConnect(func(conn *amqp.Connection) error {
		if conn.IsClosed() {
			return errors.New("got a closed connection")
		}
		late.Add(1)
		return nil
	})
	if late.Load() != 1 {
		t.Fatal("hook registered while connected did not run")
	}

	// Both run again after a reconnect, before the connection is handed out.
	p.Cut()
	waitBothDown(t, c)
	p.Restore()
	waitFor(t, "a reconnect", 30*time.Second, func() bool { return c.Status().Connections[1].Reconnects == 2 && c.Connected() })
	if calls.Load() != 4 || late.Load() != 2 {
		t.Fatalf("after reconnect: hooks ran %d and %d times", calls.Load(), late.Load())
	}
}

func TestPasswordNeverShown(t *testing.T) {
	rabbit.SkipIfShort(t)
	const secret = "s3cret-Pa55word"
	u, err := url.Parse(rabbit.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("wasmrouter-nobody", secret)
	var logs logBuffer
	c := startCluster(t, u.String(), fastOptions(logs.logger()))
	waitFor(t, "a failed login", 30*time.Second, func() bool { return c.Status().LastError != "" })
	st := c.Status()
	if st.Connected {
		t.Fatal("connected with a bad password")
	}
	for what, s := range map[string]string{"LastError": st.LastError, "URL": st.URL, "logs": logs.String()} {
		if strings.Contains(s, secret) {
			t.Fatalf("%s shows the password: %s", what, s)
		}
	}
	if !strings.Contains(st.URL, "****") {
		t.Fatalf("status URL not redacted: %s", st.URL)
	}

	// A URL that does not parse: the parser's error quotes the whole URL.
	_, err = NewCluster(config.ClusterSpec{Name: "bad", URL: "amqp://user:" + secret + "@host:port/"}, Options{})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "cluster bad") {
		t.Fatalf("bad URL error: %v", err)
	}
}

func TestRunEndsPromptlyDuringHandshake(t *testing.T) {
	// A server that accepts but never answers holds the AMQP handshake open.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- conn
		}
	}()
	c, err := NewCluster(config.ClusterSpec{Name: "silent", URL: "amqp://guest:guest@" + ln.Addr().String() + "/"}, Options{DialTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	conn := <-accepted
	defer conn.Close()
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel during the handshake")
	}
	// Without the cancel, the handshake would wait for its one-minute DialTimeout; the bound
	// leaves room for a loaded machine and stays far below that.
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Run took %v to return", took)
	}
	if c.Connected() {
		t.Fatal("connected to a silent server")
	}
}

func TestRunTwiceConcurrently(t *testing.T) {
	rabbit.SkipIfShort(t)
	c := startCluster(t, rabbit.URL(), fastOptions(nil))
	waitConnected(t, c, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a second concurrent Run did not return")
	}
	if !c.Connected() {
		t.Fatal("the second Run disturbed the first")
	}
}

func TestBackoffFullJitter(t *testing.T) {
	c := &Cluster{opts: Options{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for n, bound := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		var most time.Duration
		seen := map[time.Duration]bool{}
		for range 200 {
			d := c.backoff(n)
			if d < 0 || d > bound {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, bound)
			}
			most = max(most, d)
			seen[d] = true
		}
		if len(seen) < 50 || most < bound/2 {
			t.Fatalf("backoff(%d) is not jittered over [0, %v]: %d distinct values, max %v", n, bound, len(seen), most)
		}
	}
}

func TestNewClusterChecksSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec config.ClusterSpec
		want string
	}{
		{"scheme", config.ClusterSpec{Name: "a", URL: "http://host/"}, "cluster a: invalid url"},
		{"tls needs amqps", config.ClusterSpec{Name: "b", URL: "amqp://h/", TLS: &config.TLSSpec{}}, "cluster b: tls: the tls block needs an amqps:// url"},
		{"missing ca", config.ClusterSpec{Name: "c", URL: "amqps://h/", TLS: &config.TLSSpec{CAFile: "/nonexistent/ca.pem"}}, "cluster c: tls: reading ca_file: open /nonexistent/ca.pem"},
		{"cert without key", config.ClusterSpec{Name: "d", URL: "amqps://h/", TLS: &config.TLSSpec{CertFile: "c.pem"}}, "cluster d: tls: cert_file and key_file must be given together"},
		{"missing cert", config.ClusterSpec{Name: "e", URL: "amqps://h/", TLS: &config.TLSSpec{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}}, `cluster e: tls: loading cert_file "/nonexistent/c.pem" and key_file "/nonexistent/k.pem"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCluster(tc.spec, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// startLogOnlyCluster starts a cluster holding one connection, for the role "log", and waits
// until it is connected.
func startLogOnlyCluster(t *testing.T) *Cluster {
	t.Helper()
	rabbit.SkipIfShort(t)
	opts := fastOptions(nil)
	opts.Only = "log"
	c := startCluster(t, rabbit.URL(), opts)
	waitConnected(t, c, true)
	return c
}

// TestClusterWithOneConnection: with Options.Only the cluster holds a single connection, named
// with that role, for consuming and publishing alike.
func TestClusterWithOneConnection(t *testing.T) {
	c := startLogOnlyCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := c.current(c.publish); pub != conn {
		t.Fatal("publishing and consuming on different connections")
	}
	st := c.Status()
	if len(st.Connections) != 1 || st.Connections[0].Role != "log" || st.Reconnects != 1 || !st.Connected {
		t.Fatalf("status: %+v", st)
	}
	if n := rabbit.CloseConnections(t, ConnectionName(c.Name(), "log")); n != 1 {
		t.Fatalf("closed %d connections named %s", n, ConnectionName(c.Name(), "log"))
	}
	waitFor(t, "a reconnect", 30*time.Second, func() bool { return c.Connected() && c.Status().Reconnects == 2 })
}

// Dial opens a connection of the role's name beside the cluster's own, which its loss leaves
// alone.
func TestClusterDialsASpareConnection(t *testing.T) {
	c := startLogOnlyCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	own, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spare, err := c.Dial(ctx, "log-probe")
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	if spare == own || spare.IsClosed() {
		t.Fatal("Dial handed out the cluster's own connection, or a closed one")
	}
	if n := rabbit.CloseConnections(t, ConnectionName(c.Name(), "log-probe")); n != 1 {
		t.Fatalf("closed %d connections named %s, want the spare one", n, ConnectionName(c.Name(), "log-probe"))
	}
	waitFor(t, "the spare connection closed", 30*time.Second, spare.IsClosed)
	if own.IsClosed() || c.Status().Reconnects != 1 {
		t.Fatalf("the cluster's own connection went with the spare one: closed %v, status %+v", own.IsClosed(), c.Status())
	}
}
