package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// logTestConfig is a configuration for the log, replay and dlq commands: two routes from one
// source to target "a". Its cluster is never dialled by the commands under test.
const logTestConfig = `
router {
  admin_addr  = %q
  admin_token = %q
}
store { path = "data/router.db" }
cluster "main" { url = "amqp://guest:guest@127.0.0.1:1/" }
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "router.events"
}
source "other" {
  cluster  = "main"
  exchange = "other"
  queue    = "router.other"
}
target "a" {
  cluster  = "main"
  exchange = "a"
}
target "b" {
  cluster  = "main"
  exchange = "b"
%s}
route "orders" {
  source  = "in"
  match   = [%s]
  targets = ["a"]
}
route "pay" {
  source  = "in"
  match   = ["payment.#"]
  targets = [%s]
}
`

// cliConfig describes a test configuration; zero values give the defaults.
type cliConfig struct {
	adminAddr, token string
	ordersMatch      string // HCL list items, default `"order.*"`
	payTargets       string // default `"a"`
	bRoutingKey      string // target b's routing_key, unset by default
}

// writeCLIConfig writes cfg as name in dir and returns its path.
func writeCLIConfig(t *testing.T, dir, name string, c cliConfig) string {
	t.Helper()
	if c.adminAddr == "" {
		c.adminAddr = deadAddr(t)
	}
	if c.ordersMatch == "" {
		c.ordersMatch = `"order.*"`
	}
	if c.payTargets == "" {
		c.payTargets = `"a"`
	}
	rk := ""
	if c.bRoutingKey != "" {
		rk = fmt.Sprintf("  routing_key = %q\n", c.bRoutingKey)
	}
	path := filepath.Join(dir, name)
	src := fmt.Sprintf(logTestConfig, c.adminAddr, c.token, rk, c.ordersMatch, c.payTargets)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// deadAddr is a loopback address where nothing listens (a port just released).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// storePath is where writeCLIConfig's configurations keep the log.
func storePath(dir string) string { return filepath.Join(dir, "data", "router.db") }

// testEvent is an event to seed a log with.
func testEvent(source, key, body string, at time.Time) *event.Event {
	ev := &event.Event{Source: source, Exchange: "events", RoutingKey: key, Body: []byte(body), IngestTime: at.UTC()}
	ev.Props.MessageID = "m-" + key + "-" + body
	ev.Props.DeliveryMode = 2
	return ev
}

// seedLog appends evs to the log at path (creating it) and returns their seqs.
func seedLog(t *testing.T, path string, evs ...*event.Event) []uint64 {
	t.Helper()
	st, err := store.Open(store.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(t, st)
	return appendEvents(t, st, evs...)
}

func appendEvents(t *testing.T, st *store.Store, evs ...*event.Event) []uint64 {
	t.Helper()
	seqs := make([]uint64, len(evs))
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for i, ev := range evs {
		wg.Add(1)
		st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(seq uint64, dup bool, err error) {
			defer wg.Done()
			if err != nil || dup {
				errs <- fmt.Errorf("append %s: dup %v, %v", ev.RoutingKey, dup, err)
			}
			seqs[i] = seq
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return seqs
}

func closeStore(t *testing.T, st *store.Store) {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Errorf("closing store: %v", err)
	}
}

// cliResult is one in-process run of the command line.
type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// syncBuffer is a buffer that a command writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
