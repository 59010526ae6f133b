// Package rabbitnode starts a private RabbitMQ node for integration tests that need a second
// cluster. The node has its own name, ports, data and log directories, configuration, plugin
// list (rabbitmq_stream only, on a port of its own) and Erlang cookie, all in one directory,
// so the machine's broker is left alone.
// The test owns the node's process: Stop ends it (SIGTERM, the broker's graceful stop).
//
// Booting a node takes tens of seconds: share one across a package's tests with Shared.
package rabbitnode

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a node. Zero values take the defaults.
type Options struct {
	// TLS adds an amqps listener with a certificate for localhost and 127.0.0.1, signed by a
	// CA generated for the node (CAFile). Clients are not asked for a certificate.
	TLS bool
	// Dir is where Launch keeps the node's files; it must exist. Start uses a t.TempDir.
	Dir string
	// StartTimeout bounds the boot, default 3m.
	StartTimeout time.Duration
	// Cookie is the Erlang cookie; nodes that form a cluster share one. Default: a random one.
	Cookie string
}

// Node is a running RabbitMQ node.
type Node struct {
	name          string
	dir           string
	port          int
	tlsPort       int // 0 without TLS
	distPort      int
	streamPort    int // the stream protocol's listener
	streamTLSPort int // 0 without TLS
	caFile        string

	cookie       string
	startTimeout time.Duration

	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process has exited
	waited error         // the process's exit, once exited is closed

	stopOnce *sync.Once
	stopErr  error
}

// ErrNoRabbitMQ means rabbitmq-server is not installed.
var ErrNoRabbitMQ = errors.New("rabbitmq-server not found")

// stopTimeout bounds the graceful stop before the node's processes are killed.
const stopTimeout = 30 * time.Second

// Launch boots a node in opts.Dir and waits until it accepts AMQP (and TLS) connections. A boot
// that fails because another process took one of its ports is retried on fresh ports.
func Launch(opts Options) (*Node, error) {
	if opts.Dir == "" {
		return nil, errors.New("rabbitnode: Options.Dir is required")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	server, err := script("rabbitmq-server")
	if err != nil {
		return nil, err
	}
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		dir := filepath.Join(opts.Dir, "node"+strconv.Itoa(attempt))
		n, err := launchIn(server, dir, opts)
		if err == nil {
			return n, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func launchIn(server, dir string, opts Options) (*Node, error) {
	n := &Node{name: "wr-test-" + randomHex(6) + "@localhost", dir: dir, cookie: opts.Cookie, startTimeout: opts.StartTimeout}
	if n.cookie == "" {
		n.cookie = strings.ToUpper(randomHex(16))
	}
	ps, err := pickPorts(opts.TLS)
	if err != nil {
		return nil, err
	}
	n.port, n.distPort, n.tlsPort, n.streamPort, n.streamTLSPort = ps.amqp, ps.dist, ps.tls, ps.stream, ps.streamTLS
	if err := n.writeFiles(opts.TLS); err != nil {
		return nil, fmt.Errorf("rabbitnode: preparing %s: %w", dir, err)
	}
	if err := n.start(server); err != nil {
		return nil, err
	}
	return n, nil
}

// start runs the server process on the node's directory and waits until it is ready.
func (n *Node) start(server string) error {
	out, err := os.OpenFile(filepath.Join(n.dir, "node.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	n.exited, n.waited = make(chan struct{}), nil
	n.stopOnce, n.stopErr = new(sync.Once), nil
	n.cmd = exec.Command(server)
	n.cmd.Dir = n.dir
	n.cmd.Env = n.env()
	n.cmd.Stdout, n.cmd.Stderr = out, out
	// Its own process group: a node that does not stop can be killed with all its helpers.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("rabbitnode: starting %s: %w", server, err)
	}
	cmd, exited := n.cmd, n.exited
	go func() {
		err := cmd.Wait()
		n.waited = err
		close(exited)
	}()
	if err := n.waitReady(n.startTimeout); err != nil {
		_ = n.Stop()
		return err
	}
	return nil
}

// Restart starts a node that was stopped again, with the same name, ports and data: a
// clustered node rejoins its cluster.
func (n *Node) Restart() error {
	select {
	case <-n.exited:
	default:
		return fmt.Errorf("rabbitnode: node %s is running", n.name)
	}
	server, err := script("rabbitmq-server")
	if err != nil {
		return err
	}
	return n.start(server)
}

// writeFiles lays out the node's directory: cookie, configuration, plugin list.
func (n *Node) writeFiles(withTLS bool) error {
	for _, sub := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(n.dir, sub), 0o755); err != nil {
			return err
		}
	}
	// The node and rabbitmqctl (Ctl) read the cookie from this HOME; ~/.erlang.cookie is untouched.
	if err := os.WriteFile(filepath.Join(n.dir, "home", ".erlang.cookie"), []byte(n.cookie), 0o400); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "enabled_plugins"), []byte("[rabbitmq_stream].\n"), 0o644); err != nil {
		return err
	}
	// An empty env file, so that the machine's rabbitmq-env.conf (its NODENAME) is not read.
	if err := os.WriteFile(filepath.Join(n.dir, "rabbitmq-env.conf"), nil, 0o644); err != nil {
		return err
	}
	// The stream protocol's listener on a port of its own, advertised as the address clients
	// dial: the default (the host's name and 5552) is the machine broker's.
	conf := "loopback_users.guest = true\n" +
		fmt.Sprintf("stream.listeners.tcp.1 = 127.0.0.1:%d\nstream.advertised_host = 127.0.0.1\nstream.advertised_port = %d\n", n.streamPort, n.streamPort)
	if withTLS {
		tlsConf, err := n.writeCerts()
		if err != nil {
			return err
		}
		conf += tlsConf
	}
	return os.WriteFile(filepath.Join(n.dir, "rabbitmq.conf"), []byte(conf), 0o644)
}

// writeCerts writes a CA and a server certificate and returns the listener configuration.
func (n *Node) writeCerts() (string, error) {
	ca, err := newAuthority("wasmrouter test CA " + n.name)
	if err != nil {
		return "", err
	}
	certPEM, keyPEM, err := ca.issueServer()
	if err != nil {
		return "", err
	}
	n.caFile = filepath.Join(n.dir, "ca.pem")
	cert, key := filepath.Join(n.dir, "server.pem"), filepath.Join(n.dir, "server.key")
	for path, data := range map[string][]byte{n.caFile: ca.pem, cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("listeners.ssl.default = 127.0.0.1:%d\n"+
		"ssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n"+
		"ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"+
		"stream.listeners.ssl.1 = 127.0.0.1:%d\nstream.advertised_tls_port = %d\n",
		n.tlsPort, n.caFile, cert, key, n.streamTLSPort, n.streamTLSPort), nil
}

// baseEnv is the process environment without the machine's RabbitMQ and Erlang settings, with
// the node's HOME (its cookie) and env file. rabbitmqctl runs with just this: given the node's
// distribution port, it would derive its own from it (that port plus 10000, maybe past 65535).
func (n *Node) baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "NODENAME" || strings.HasPrefix(k, "RABBITMQ_") || strings.HasPrefix(k, "ERL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+filepath.Join(n.dir, "home"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.dir, "rabbitmq-env.conf"),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	)
}

// env is the server's environment.
func (n *Node) env() []string {
	return append(n.baseEnv(),
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		// Schedulers that sleep instead of spinning when idle: test nodes share a few cores.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none",
	)
}

// Name is the Erlang node name, for rabbitmqctl -n.
func (n *Node) Name() string { return n.name }

// Addr is the AMQP listener's host:port.
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// URL is the node's AMQP URL, logging in as guest.
func (n *Node) URL() string { return "amqp://guest:guest@" + n.Addr() + "/" }

// TLSAddr is the amqps listener's host:port as a client names it (the certificate is for
// localhost), or "" without TLS.
func (n *Node) TLSAddr() string {
	if n.tlsPort == 0 {
		return ""
	}
	return "localhost:" + strconv.Itoa(n.tlsPort)
}

// TLSURL is the node's amqps URL, or "" without TLS.
func (n *Node) TLSURL() string {
	if n.tlsPort == 0 {
		return ""
	}
	return "amqps://guest:guest@" + n.TLSAddr() + "/"
}

// CAFile is the PEM file of the CA that signed the node's certificate, or "" without TLS.
func (n *Node) CAFile() string { return n.caFile }

// StreamAddr is the stream protocol's listener, host:port.
func (n *Node) StreamAddr() string { return "127.0.0.1:" + strconv.Itoa(n.streamPort) }

// StreamPort is the stream protocol's port.
func (n *Node) StreamPort() int { return n.streamPort }

// StreamTLSPort is the stream protocol's TLS port, or 0 without TLS.
func (n *Node) StreamTLSPort() int { return n.streamTLSPort }

// Dir is the node's directory (configuration, data, logs).
func (n *Node) Dir() string { return n.dir }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
