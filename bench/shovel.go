package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Shovel moves the messages with a RabbitMQ dynamic shovel (plugin rabbitmq_shovel) from the
// source queue to the target exchange, acknowledging each message once the target confirmed
// it (ack mode on-confirm, the guarantee the router gives). It runs inside the broker on
// direct connections: no process of its own, so its CPU and memory are the broker's.
type Shovel struct {
	URL      string // the broker the benchmark uses: its vhost is the shovel's
	Prefetch int
	// Ctl runs rabbitmqctl: the command and its leading arguments (default
	// ["rabbitmqctl"]; add "-n", "NODE" for another node).
	Ctl []string
	// StartTimeout bounds the wait for the shovel's consumer to appear (default 30s).
	StartTimeout time.Duration
}

var _ Side = Shovel{}

// Name implements Side.
func (Shovel) Name() string { return "shovel" }

// SecondCluster implements Side.
func (Shovel) SecondCluster() bool { return false }

// shovelDefinition is the dynamic shovel's parameter value.
func (s Shovel) shovelDefinition(t Topology) (string, string, error) {
	u, err := amqp.ParseURI(s.URL)
	if err != nil {
		return "", "", fmt.Errorf("bench: shovel: %w", err)
	}
	// "amqp://" (with a vhost path when not "/") is a direct connection inside the broker:
	// no socket and no credentials in the definition.
	direct := "amqp://"
	if u.Vhost != "/" {
		direct += "/" + url.PathEscape(u.Vhost)
	}
	def, err := json.Marshal(map[string]any{
		"src-protocol":       "amqp091",
		"src-uri":            direct,
		"src-queue":          t.SourceQueue,
		"src-prefetch-count": s.Prefetch,
		"dest-protocol":      "amqp091",
		"dest-uri":           direct,
		"dest-exchange":      t.TargetExchange,
		"ack-mode":           "on-confirm",
	})
	return string(def), u.Vhost, err
}

// Start implements Side: it declares the shovel with rabbitmqctl, then waits for its consumer
// on the source queue and takes that moment as the start. rabbitmqctl's own start-up (about
// two seconds of Erlang VM) is thereby left out; the shovel's connection set-up is in.
func (s Shovel) Start(run RunDir) (Running, error) {
	def, vhost, err := s.shovelDefinition(run.Topology)
	if err != nil {
		return nil, err
	}
	b, err := Dial(s.URL)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	name := run.Topology.SourceQueue + ".shovel"
	sh := &shovelRun{ctl: s.ctl(), vhost: vhost, name: name, stopped: make(chan struct{})}
	if out, err := sh.rabbitmqctl("-q", "-p", vhost, "set_parameter", "shovel", name, def); err != nil {
		return nil, fmt.Errorf("bench: declaring the shovel (is plugin rabbitmq_shovel enabled?): %w: %s", err, out)
	}
	timeout := s.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	started, _, err := b.WaitQueue(ctx, run.Topology.SourceQueue, 5*time.Millisecond, nil,
		func(q QueueState) bool { return q.Consumers > 0 })
	if err != nil {
		status, _ := sh.rabbitmqctl("shovel_status")
		return nil, errors.Join(fmt.Errorf("bench: the shovel did not start: %w\nshovel_status:\n%s", err, status), sh.Stop(0))
	}
	sh.started = started
	return sh, nil
}

func (s Shovel) ctl() []string {
	if len(s.Ctl) == 0 {
		return []string{"rabbitmqctl"}
	}
	return s.Ctl
}

// shovelRun is a declared shovel.
type shovelRun struct {
	ctl         []string
	vhost, name string
	started     time.Time
	stopOnce    sync.Once
	stopErr     error
	stopped     chan struct{}
}

func (r *shovelRun) rabbitmqctl(args ...string) (string, error) {
	out, err := exec.Command(r.ctl[0], append(r.ctl[1:len(r.ctl):len(r.ctl)], args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// PID implements Running: 0, the shovel runs inside the broker.
func (r *shovelRun) PID() int { return 0 }

// Started implements Running.
func (r *shovelRun) Started() time.Time { return r.started }

// Exited implements Running: closed once the shovel is deleted.
func (r *shovelRun) Exited() <-chan struct{} { return r.stopped }

// Stop implements Running: it deletes the shovel, which stops it.
func (r *shovelRun) Stop(time.Duration) error {
	r.stopOnce.Do(func() {
		if out, err := r.rabbitmqctl("-q", "-p", r.vhost, "clear_parameter", "shovel", r.name); err != nil {
			r.stopErr = fmt.Errorf("bench: deleting shovel %s: %w: %s", r.name, err, out)
		}
		close(r.stopped)
	})
	return r.stopErr
}

func (r *shovelRun) withLog(err error) error { return err }
