package rabbitnode

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

func TestServerCertificateChainsToItsCAOnly(t *testing.T) {
	ca, err := newAuthority("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.issueServer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("certificate and key do not pair: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "rabbit.example"}); err == nil {
		t.Error("server certificate verifies for a name it does not carry")
	}

	other := filepath.Join(t.TempDir(), "other.pem")
	if err := WriteCA(other); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	unrelated := x509.NewCertPool()
	if !unrelated.AppendCertsFromPEM(data) {
		t.Fatal("WriteCA wrote no PEM certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: unrelated, DNSName: "localhost"}); err == nil {
		t.Error("server certificate verifies against an unrelated CA")
	}
}

func TestPickPortsAvoidsCLIRange(t *testing.T) {
	ps, err := pickPorts(true)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range []int{ps.amqp, ps.dist, ps.tls, ps.stream, ps.streamTLS} {
		if p == 0 || seen[p] || cliPort(p) {
			t.Fatalf("ports %+v: want five distinct ports outside 35672-35682", ps)
		}
		seen[p] = true
	}
	if !cliPort(35672) || !cliPort(35682) || cliPort(35683) || cliPort(25672) {
		t.Fatal("cliPort does not cover exactly 35672-35682")
	}
}

func TestNode(t *testing.T) {
	start := time.Now()
	n := Start(t, Options{TLS: true})
	t.Logf("node %s booted in %s", n.Name(), time.Since(start).Round(100*time.Millisecond))

	queue := rabbit.Unique("rabbitnode.q")
	t.Run("AMQP", func(t *testing.T) {
		conn, err := amqp.Dial(n.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch := rabbit.Channel(t, conn)
		if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		rabbit.PublishConfirmed(t, ch, "", queue, amqp.Publishing{Body: []byte("hello")})
		got := rabbit.Collect(t, ch, queue, 1, 30*time.Second)
		if len(got) != 1 || string(got[0].Body) != "hello" {
			t.Fatalf("got %d messages", len(got))
		}
	})
	t.Run("SeparateFromTheMainBroker", func(t *testing.T) {
		if n.Addr() == rabbit.Addr(t) {
			t.Fatalf("node listens on the main broker's address %s", n.Addr())
		}
		ch := rabbit.Channel(t, rabbit.Dial(t))
		if _, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil); err == nil {
			t.Fatalf("queue %s, declared on the node, exists on the main broker", queue)
		}
	})
	t.Run("Ctl", func(t *testing.T) {
		out, err := n.Ctl("list_queues", "name", "-q", "--no-table-headers")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, queue) {
			t.Fatalf("rabbitmqctl list_queues on %s does not show %s:\n%s", n.Name(), queue, out)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		if !strings.HasPrefix(n.TLSURL(), "amqps://") || n.CAFile() == "" {
			t.Fatalf("TLSURL %q, CAFile %q", n.TLSURL(), n.CAFile())
		}
		conn, err := amqp.DialTLS(n.TLSURL(), &tls.Config{RootCAs: pool(t, n.CAFile())})
		if err != nil {
			t.Fatalf("amqps with the node's CA: %v", err)
		}
		_ = conn.Close()

		other := filepath.Join(t.TempDir(), "other.pem")
		if err := WriteCA(other); err != nil {
			t.Fatal(err)
		}
		_, err = amqp.DialTLS(n.TLSURL(), &tls.Config{RootCAs: pool(t, other)})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("amqps with an unrelated CA: %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("Stop", func(t *testing.T) {
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-n.Exited():
		default:
			t.Fatal("Stop returned before the node's process exited")
		}
		if c, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
			_ = c.Close()
			t.Fatalf("%s still accepts connections after Stop", n.Addr())
		}
		if err := n.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	})
}

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

// A boot that failed on a port taken between picking and binding is retried on fresh ports,
// whichever of the broker's two checks saw it.
func TestBootFailuresOnTakenPortsAreRecognised(t *testing.T) {
	for _, log := range []string{
		`{failed_to_start_child,prelaunch,{dist_port_already_used,42331,"wr-test-b92eb4290077","localhost"}}`,
		`Failed to start Ranch listener {acceptor,{127,0,0,1},40001} ... eaddrinuse`,
	} {
		if !portTakenIn(log) {
			t.Errorf("not recognised as a taken port: %s", log)
		}
	}
	if portTakenIn(`{failed_to_start_child,prelaunch,{error,nxdomain}}`) {
		t.Error("an unrelated boot failure recognised as a taken port")
	}
}
