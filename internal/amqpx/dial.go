package amqpx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/regfile"
)

// dialer opens one AMQP connection to a cluster. For amqps:// it does the TLS handshake itself
// and hands the library a plain amqp:// URL over the TLS connection: that way a TLS failure,
// including one the server reports only after the handshake (a client certificate it refuses),
// is reported as such instead of as a closed connection.
type dialer struct {
	name string
	url  string      // what the library dials; holds the password
	spec string      // the URL as configured (amqps:// stays so); holds the password
	tls  *tls.Config // nil for amqp://
	opts Options
}

func newDialer(spec config.ClusterSpec, opts Options) (dialer, error) {
	d := dialer{name: spec.Name, url: spec.URL, spec: spec.URL, opts: opts}
	uri, err := amqp.ParseURI(spec.URL)
	if err != nil {
		// url.Parse quotes the whole URL, password included, in its errors.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return d, fmt.Errorf("invalid url %s: %v", config.RedactURL(spec.URL), err)
	}
	if uri.Scheme != "amqps" {
		if spec.TLS != nil {
			return d, fmt.Errorf("tls: the tls block needs an amqps:// url, got %s", config.RedactURL(spec.URL))
		}
		return d, nil
	}
	s := spec.TLS
	if s == nil {
		// No tls block: the URL's own TLS parameters, if any, and the system's roots.
		s = &config.TLSSpec{CAFile: uri.CACertFile, CertFile: uri.CertFile, KeyFile: uri.KeyFile, ServerName: uri.ServerName}
	}
	if d.tls, err = tlsConfig(s, uri.Host); err != nil {
		return d, err
	}
	u, err := url.Parse(spec.URL)
	if err != nil {
		return d, fmt.Errorf("invalid url %s", config.RedactURL(spec.URL))
	}
	u.Scheme = "amqp"
	if u.Port() == "" {
		u.Host = net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
	}
	d.url = u.String()
	return d, nil
}

// maxTLSFileSize bounds a certificate or key file (a few KiB in practice).
const maxTLSFileSize = 1 << 20

// CheckCluster builds what a connection to the cluster needs (URL, TLS configuration from the
// certificate and key files) without connecting: `router validate` refuses what `run` would.
func CheckCluster(spec config.ClusterSpec) error {
	_, err := newDialer(spec, Options{})
	return err
}

// tlsConfig builds a verifying client configuration from the tls block.
func tlsConfig(s *config.TLSSpec, host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if s.CAFile != "" {
		pem, err := regfile.Read(s.CAFile, maxTLSFileSize)
		if err != nil {
			return nil, fmt.Errorf("tls: reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca_file %q holds no PEM certificate", s.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file must be given together")
	}
	if s.CertFile != "" {
		certPEM, err := regfile.Read(s.CertFile, maxTLSFileSize)
		var keyPEM []byte
		if err == nil {
			keyPEM, err = regfile.Read(s.KeyFile, maxTLSFileSize)
		}
		var cert tls.Certificate
		if err == nil {
			cert, err = tls.X509KeyPair(certPEM, keyPEM)
		}
		if err != nil {
			return nil, fmt.Errorf("tls: loading cert_file %q and key_file %q: %w", s.CertFile, s.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dial connects, bounded by DialTimeout and abandoned when ctx ends. The connection writes
// through the returned batchConn.
func (d dialer) dial(ctx context.Context, role string) (*amqp.Connection, *batchConn, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(ConnectionName(d.name, role))
	cfg := amqp.Config{Heartbeat: d.opts.Heartbeat, Properties: props}
	var (
		mu      sync.Mutex
		raw     net.Conn
		secured *tlsConn
		batch   *batchConn
	)
	closeRaw := func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			_ = raw.Close()
		}
	}
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Timeout: d.opts.DialTimeout}
		conn, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// The library clears this deadline once the AMQP handshake is done.
		_ = conn.SetDeadline(time.Now().Add(d.opts.DialTimeout))
		mu.Lock()
		raw = conn
		mu.Unlock()
		// ctx may have ended before raw was set, when closeRaw had nothing to close yet.
		if ctx.Err() != nil {
			_ = conn.Close()
			return nil, ctx.Err()
		}
		// Reads go through the frame filter (framefilter.go): a message whose headers the
		// client cannot decode must not take the connection down.
		if d.tls == nil {
			batch = newBatchConn(conn)
			return newFilteredConn(batch, &batch.returns), nil
		}
		tc := tls.Client(conn, d.tls.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, classifyDialError(err)
		}
		mu.Lock()
		secured = &tlsConn{Conn: tc}
		mu.Unlock()
		batch = newBatchConn(secured)
		return newFilteredConn(batch, &batch.returns), nil
	}
	stop := context.AfterFunc(ctx, closeRaw)
	conn, err := amqp.DialConfig(d.url, cfg)
	stop()
	if err != nil {
		// A failed handshake can leave the library's reader on the socket.
		closeRaw()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		if secured != nil {
			if rerr := secured.readErr(); rerr != nil && strings.Contains(rerr.Error(), "tls: ") {
				return nil, nil, classifyDialError(rerr)
			}
		}
		return nil, nil, classifyDialError(err)
	}
	if ctx.Err() != nil {
		_ = conn.Close()
		return nil, nil, ctx.Err()
	}
	return conn, batch, nil
}

// ConnectionName is the client-provided connection name one of a cluster's connections
// carries (role RoleConsume or RolePublish), as shown in the management UI and rabbitmqctl.
func ConnectionName(cluster, role string) string { return "wasmrouter/" + cluster + "/" + role }

// ConnectionNames are the names of both of a cluster's connections.
func ConnectionNames(cluster string) []string {
	return []string{ConnectionName(cluster, RoleConsume), ConnectionName(cluster, RolePublish)}
}

// tlsConn remembers the first read error: the library reports a connection the server closed
// during the AMQP handshake as merely closed, where the TLS layer knows why (a TLS 1.3 server
// rejects a client certificate only after the handshake, with an alert).
type tlsConn struct {
	net.Conn
	mu  sync.Mutex
	err error
}

func (c *tlsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *tlsConn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// tlsError marks a TLS failure: "tls: x509: certificate signed by unknown authority".
type tlsError struct {
	msg string
	err error
}

func (e *tlsError) Error() string { return "tls: " + e.msg }
func (e *tlsError) Unwrap() error { return e.err }

func classifyDialError(err error) error {
	var done *tlsError
	if errors.As(err, &done) {
		return err
	}
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return &tlsError{msg: verr.Err.Error(), err: err}
	}
	var alert tls.AlertError
	var record tls.RecordHeaderError
	if errors.As(err, &alert) || errors.As(err, &record) || strings.Contains(err.Error(), "tls: ") {
		return &tlsError{msg: strings.TrimPrefix(err.Error(), "tls: "), err: err}
	}
	return err
}
