package rabbitnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errPortTaken marks a boot that failed because a port was taken after it was picked.
var errPortTaken = errors.New("a listener port was taken")

// script finds a RabbitMQ command. Debian's /usr/sbin wrappers switch to the rabbitmq user
// through su, which drops the environment that configures the node, so the scripts they wrap
// come first.
func script(name string) (string, error) {
	for _, dir := range []string{"/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("rabbitnode: %w (%s)", ErrNoRabbitMQ, name)
}

// cliPort reports whether p is one of the distribution ports the CLI tools of a node on the default distribution port
// (25672) take, 35672-35682, where a listener there collides with any rabbitmqctl running at the time.
func cliPort(p int) bool { return p >= 35672 && p <= 35682 }

// portTakenIn reports whether a node's log says its boot failed on a port another process holds:
// eaddrinuse from a listener, or dist_port_already_used from the boot's check of the ports the
// nodes registered with epmd hold (another node, maybe of another test process, booting on a
// port picked at the same time).
func portTakenIn(log string) bool {
	return strings.Contains(log, "eaddrinuse") || strings.Contains(log, "dist_port_already_used")
}

// ports are a node's listeners.
type ports struct {
	amqp, dist, tls   int // tls: 0 without TLS
	stream, streamTLS int // the stream protocol's (rabbitmq_stream); streamTLS: 0 without TLS
}

// pickPorts finds free loopback ports for AMQP, distribution, the stream protocol and (with
// TLS) amqps and the stream protocol over TLS.
func pickPorts(withTLS bool) (ports, error) {
	want := 3
	if withTLS {
		want = 5
	}
	var picked []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for tries := 0; len(picked) < want; tries++ {
		if tries > 100 {
			return ports{}, errors.New("rabbitnode: no free ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("rabbitnode: finding a free port: %w", err)
		}
		held = append(held, l)
		if p := l.Addr().(*net.TCPAddr).Port; !cliPort(p) {
			picked = append(picked, p)
		}
	}
	ps := ports{amqp: picked[0], dist: picked[1], stream: picked[2]}
	if withTLS {
		ps.tls, ps.streamTLS = picked[3], picked[4]
	}
	return ps, nil
}

// waitReady waits until the node completes an AMQP handshake as guest (and a TLS handshake
// verified against its CA), the readiness the tests need, or until the process exits.
func (n *Node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-n.exited:
			err := fmt.Errorf("rabbitnode: node %s exited during boot (%v)\n%s", n.name, n.waited, n.LogTail(30))
			if portTakenIn(n.LogTail(200)) {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		default:
		}
		if last = n.probe(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitnode: node %s not ready after %s: %v\n%s", n.name, timeout, last, n.LogTail(30))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (n *Node) probe() error {
	conn, err := amqp.DialConfig(n.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return err
	}
	_ = conn.Close()
	// The stream plugin's listener, which the log on a stream dials.
	sc, err := net.DialTimeout("tcp", n.StreamAddr(), 2*time.Second)
	if err != nil {
		return err
	}
	_ = sc.Close()
	if n.tlsPort == 0 {
		return nil
	}
	pem, err := os.ReadFile(n.caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", n.TLSAddr(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return err
	}
	return c.Close()
}

// Stop stops the node gracefully (SIGTERM, which the server script turns into the broker's own
// stop) and kills its process group if it is still there after 30s. Idempotent.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		select {
		case <-n.exited:
			return
		default:
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
			return
		case <-time.After(stopTimeout):
		}
		// The group is the server script's own (Setpgid), still alive here.
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-n.exited:
			n.stopErr = fmt.Errorf("rabbitnode: node %s did not stop within %s and was killed", n.name, stopTimeout)
		case <-time.After(10 * time.Second):
			n.stopErr = fmt.Errorf("rabbitnode: node %s survives SIGKILL", n.name)
		}
	})
	return n.stopErr
}

// Exited is closed when the node's process has exited.
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Ctl runs rabbitmqctl against the node and returns its combined output.
func (n *Node) Ctl(args ...string) (string, error) {
	ctl, err := script("rabbitmqctl")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, append([]string{"-n", n.name}, args...)...)
	cmd.Dir = n.dir
	cmd.Env = n.baseEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitnode: rabbitmqctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// LogTail is the last lines of the node's console output and log file, for failure messages.
func (n *Node) LogTail(lines int) string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(n.dir, "node.out"), filepath.Join(n.dir, "log", n.name+".log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), strings.Join(all, "\n"))
	}
	return b.String()
}
