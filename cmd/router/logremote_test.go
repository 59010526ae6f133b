package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// remoteConfig: "orders" delivers order.* to exchange a (a queue is bound to it), "parked"
// to an exchange nothing is bound to, so that its events are refused and dead-lettered at once.
const remoteConfig = `
router {
  admin_addr  = %q
  admin_token = %q
}
store { path = %q }
cluster "main" { url = %q }
source "in" {
  cluster  = "main"
  exchange = %q
  queue    = %q
}
target "a" {
  cluster  = "main"
  exchange = %q
}
target "parked" {
  cluster  = "main"
  exchange = %q
}
route "orders" {
  source  = "in"
  match   = ["order.*"]
  targets = ["a"]
}
route "parked" {
  source  = "in"
  match   = ["parked.#"]
  targets = ["parked"]
  retry {
    attempts = 1
  }
}
`

// remoteRouter runs a router in this process and writes, for the commands, a configuration
// naming its admin address (and cliToken as the token), with the same store.
func remoteRouter(t *testing.T, token, cliToken string) (cliConfig string, ch *amqp.Channel, source string) {
	t.Helper()
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	source, queue := rabbit.Unique("cli.in"), rabbit.Unique("cli.router")
	a, parked := rabbit.Unique("cli.a"), rabbit.Unique("cli.parked")
	for _, x := range []string{source, a, parked} {
		rabbit.DeleteExchangeAtCleanup(t, x)
	}
	rabbit.DeleteQueueAtCleanup(t, queue)
	db := filepath.Join(dir, "router.db")
	src := func(addr, tok string) string {
		return fmt.Sprintf(remoteConfig, addr, tok, db, rabbit.URL(), source, queue, a, parked)
	}
	cfg := inproc.LoadBytes(t, []byte(src("127.0.0.1:0", token)), filepath.Join(dir, "router.hcl"))
	r := inproc.Start(t, cfg, inproc.Options{})
	r.WaitReady(t, 30*time.Second)
	cliConfig = filepath.Join(dir, "cli.hcl")
	if err := os.WriteFile(cliConfig, []byte(src(r.Admin, cliToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := rabbit.Dial(t)
	ch = rabbit.Channel(t, conn)
	rabbit.DeclareTargetQueueBound(t, ch, a, "#")
	return cliConfig, ch, source
}

func TestLogAndDLQCommandsReadARunningRouter(t *testing.T) {
	cfg, ch, source := remoteRouter(t, "cli-s3cret", "cli-s3cret")
	rabbit.PublishConfirmed(t, ch, source, "order.created", amqp.Publishing{MessageId: "o1", Headers: amqp.Table{"tenant": "acme"}, Body: []byte("one")})
	rabbit.PublishConfirmed(t, ch, source, "order.paid", amqp.Publishing{MessageId: "o2", Headers: amqp.Table{"tenant": "globex"}, Body: []byte("two")})
	rabbit.PublishConfirmed(t, ch, source, "parked.x", amqp.Publishing{MessageId: "p1", Body: []byte("parked body")})
	// The dead letter is there once dlq list shows it.
	deadline := time.Now().Add(30 * time.Second)
	var dlq cliResult
	for {
		dlq = runCLI(t, "dlq", "list", "-c", cfg, "--show")
		if dlq.code == 0 && len(lines(dlq.stdout)) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dlq list --show: %+v", dlq)
		}
		time.Sleep(50 * time.Millisecond) // the router dead-letters on its own time
	}
	var dl logquery.DeadLetterRecord
	if err := json.Unmarshal([]byte(dlq.stdout), &dl); err != nil || dl.Event == nil || dl.Event.Body != "parked body" || dl.Event.MessageID != "p1" || dl.Route != "parked" {
		t.Fatalf("dlq list --show: %v %s", err, dlq.stdout)
	}

	res := runCLI(t, "log", "list", "-c", cfg, "--header", "tenant:acme")
	if recs := decodeRecords(t, res.stdout); res.code != 0 || len(recs) != 1 || recs[0].MessageID != "o1" || recs[0].Headers["tenant"] != "acme" {
		t.Fatalf("log list --header: %+v", res)
	}
	res = runCLI(t, "log", "list", "-c", cfg, "--key", "order.*", "--limit", "1")
	if recs := decodeRecords(t, res.stdout); res.code != 0 || len(recs) != 1 || recs[0].Seq != 1 {
		t.Fatalf("log list --key --limit: %+v", res)
	}
	res = runCLI(t, "log", "show", "-c", cfg, "2", "99")
	if recs := decodeRecords(t, res.stdout); res.code != exitFail || len(recs) != 1 || recs[0].Body != "two" || !strings.Contains(res.stderr, "99") {
		t.Fatalf("log show 2 99: %+v", res)
	}
	res = runCLI(t, "log", "stats", "-c", cfg)
	var stats logquery.LogStats
	if err := json.Unmarshal([]byte(res.stdout), &stats); err != nil || res.code != 0 || stats.Count != 3 || stats.DeadLettersPending != 1 {
		t.Fatalf("log stats: %v %+v", err, res)
	}

	// tail -f shows new events as they come.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"log", "tail", "-c", cfg, "-n", "1", "-f"}, &out, &errb) }()
	waitOutput := func(what string, want int) {
		t.Helper()
		for len(lines(out.String())) < want {
			if ctx.Err() != nil {
				t.Fatalf("%s: %s / %s", what, out.String(), errb.String())
			}
			time.Sleep(20 * time.Millisecond) // the command prints on its own time
		}
	}
	waitOutput("tail -n 1", 1)
	rabbit.PublishConfirmed(t, ch, source, "order.created", amqp.Publishing{MessageId: "live", Body: []byte("new")})
	waitOutput("tail -f", 2)
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("tail -f ended %d: %s", code, errb.String())
	}
	recs := decodeRecords(t, out.String())
	if len(recs) != 2 || recs[0].Seq != 3 || recs[1].MessageID != "live" || recs[1].Seq != 4 {
		t.Errorf("tail -f printed %s", out.String())
	}
}

func TestLogCommandsSayWhenTheTokenIsMissing(t *testing.T) {
	cfg, _, _ := remoteRouter(t, "cli-s3cret", "")
	for _, args := range [][]string{{"log", "list"}, {"log", "show", "1"}, {"log", "tail", "-f"}, {"dlq", "list"}} {
		res := runCLI(t, append(args, "-c", cfg)...)
		if res.code != exitFail || !strings.Contains(res.stderr, "wants a bearer token") {
			t.Errorf("%v without the token: %+v", args, res)
		}
	}
}

func TestReplayAndRedriveSayWhatDidNotGoThrough(t *testing.T) {
	cfg, ch, source := remoteRouter(t, "", "")
	rabbit.PublishConfirmed(t, ch, source, "parked.1", amqp.Publishing{Body: []byte("p1")})
	rabbit.PublishConfirmed(t, ch, source, "parked.2", amqp.Publishing{Body: []byte("p2")})
	rabbit.PublishConfirmed(t, ch, source, "order.created", amqp.Publishing{Body: []byte("o")})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := runCLI(t, "dlq", "list", "-c", cfg)
		if len(lines(res.stdout)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters: %+v", res)
		}
		time.Sleep(50 * time.Millisecond) // the router dead-letters on its own time
	}
	// The parked events fail again; their dead letters exist already.
	res := runCLI(t, "replay", "-c", cfg, "--from-seq", "1")
	if res.stdout != "replayed 1 events\n" {
		t.Errorf("replay stdout %q, want the result line alone", res.stdout)
	}
	for _, want := range []string{
		"selected 3, delivered 1, dropped by a filter 0, failed 2 (dead-lettered 0)",
		"failed: seq 1, route parked, target parked: ", "failed: seq 2, route parked, target parked: ",
		"NO_ROUTE", "its dead letter stays pending",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("replay output lacks %q:\n%s\n%s", want, res.stdout, res.stderr)
		}
	}
	res = runCLI(t, "dlq", "replay", "-c", cfg, "--route", "parked")
	if res.code != exitFail || !strings.Contains(res.stdout, "redriven 0 dead letters") ||
		!strings.Contains(res.stderr, "selected 2, delivered 0, dropped by a filter 0, failed 2 (dead-lettered 0)") {
		t.Errorf("dlq replay: %+v", res)
	}
}
