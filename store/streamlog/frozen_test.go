package streamlog

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// frozenHolderEnv makes the test binary, run again by TestFrozenHolderLosesThePair, a process
// that holds a pair and waits to be frozen.
const frozenHolderEnv = "STREAMLOG_FROZEN_HOLDER"

// testTakeover is the bound the frozen-holder test keeps (store.takeover).
const testTakeover = 4 * time.Second

func TestMain(m *testing.M) {
	if queue := os.Getenv(frozenHolderEnv); queue != "" {
		holdForever(queue)
		return
	}
	os.Exit(m.Run())
}

// holdForever holds the pair of queue on a connection with the takeover's heartbeat, says so
// on stdout and waits (for SIGSTOP, then SIGKILL).
func holdForever(queue string) {
	conn, err := amqp.DialConfig(rabbit.URL(), amqp.Config{Heartbeat: HeartbeatFor(testTakeover)})
	if err != nil {
		os.Exit(2)
	}
	l, err := OpenLease(conn, queue, "frozen")
	if err != nil {
		os.Exit(3)
	}
	<-l.Granted()
	os.Stdout.WriteString("granted\n")
	select {}
}

// A router that stops answering without closing its sockets (a frozen process, a lost
// machine) loses its pairs within store.takeover: the broker misses its heartbeats.
func TestFrozenHolderLosesThePair(t *testing.T) {
	conn := rabbit.Dial(t)
	queue := rabbit.Unique("streamlog.lease")
	rabbit.DeleteQueueAtCleanup(t, queue)

	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), frozenHolderEnv+"="+queue)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "granted" {
			t.Fatalf("holder process says %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("holder process did not get the pair")
	}

	waiting := openLease(t, conn, queue, "router-b")
	if err := holder.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-waiting.Granted():
	case <-time.After(testTakeover):
		t.Fatalf("the pair did not move within %s of its holder freezing (heartbeat %s)", testTakeover, HeartbeatFor(testTakeover))
	}
	t.Logf("pair moved %s after its holder froze (heartbeat %s, takeover %s)", time.Since(start).Round(10*time.Millisecond), HeartbeatFor(testTakeover), testTakeover)
}

func TestHeartbeatFor(t *testing.T) {
	for takeover, want := range map[time.Duration]time.Duration{15 * time.Second: 3 * time.Second, 4 * time.Second: time.Second, time.Second: time.Second, 10 * time.Second: 2 * time.Second} {
		if got := HeartbeatFor(takeover); got != want {
			t.Errorf("HeartbeatFor(%s) = %s, want %s", takeover, got, want)
		}
	}
}
