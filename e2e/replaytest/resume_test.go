package replaytest

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
	"github.com/wasmrouter/wasmrouter/router"
)

var jobIDInProgress = regexp.MustCompile(`replaying \(job ([0-9A-Za-z-]+)\)`)

func unfinishedReplays(t *testing.T, cfg string) []string {
	t.Helper()
	res := cli(t, "log", "stats", "-c", cfg)
	var st struct {
		Unfinished []string `json:"unfinished_replays"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || res.code != 0 {
		t.Fatalf("log stats: exit %d, %q: %v (stderr %s)", res.code, res.stdout, err, res.stderr)
	}
	return st.Unfinished
}

// A replay whose process is killed part-way is resumed from where its targets had confirmed,
// not started over: every selected event arrives, the first ones once.
func TestReplayResumesAfterACrash(t *testing.T) {
	const n = 40
	w := newWorld(t)
	out := w.bind(w.out)
	cliCfg := w.logWithRouterStopped(out, ids("o", n))

	// 20 events a second: the job is killed while half of them are still to come.
	cmd := exec.Command(routerBin, "replay", "-c", cliCfg, "--rate", "20")
	var stderr logbuf.Buffer // read while the process writes
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	first := out.take(12, waitMsgs)
	var id string
	waitUntil(t, 10*time.Second, "the job id in the progress output", func() bool {
		if m := jobIDInProgress.FindStringSubmatch(stderr.String()); m != nil {
			id = m[1]
		}
		return id != ""
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if got := unfinishedReplays(t, cliCfg); !slices.Equal(got, []string{id}) {
		t.Fatalf("unfinished replays after the crash: %v, want [%s]", got, id)
	}
	for _, bad := range [][]string{{"--resume", id, "--route", "all"}, {"--resume", "nope"}} {
		if res := cli(t, append([]string{"replay", "-c", cliCfg}, bad...)...); res.code == 0 {
			t.Errorf("replay %v: exit 0, stdout %q", bad, res.stdout)
		}
	}

	res := cli(t, "replay", "-c", cliCfg, "--resume", id)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "replayed ") {
		t.Fatalf("resume: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkResumed(t, w, out, first, n)
	if got := unfinishedReplays(t, cliCfg); len(got) != 0 {
		t.Errorf("unfinished replays after the resumed job ended: %v", got)
	}
}

// checkResumed takes what the consumer got after first (what it took before the job was cut
// short) up to a marker, and checks that the resumed job delivered every one of the n events
// without starting over.
func checkResumed(t *testing.T, w *world, out *consumer, first []amqp.Delivery, n int) {
	t.Helper()
	// Everything delivered by both runs, up to a marker published after the resume ended.
	all := first
	marker := markerIn(t, w, out)
	for d := out.take(1, waitMsgs)[0]; d.MessageId != marker; d = out.take(1, waitMsgs)[0] {
		all = append(all, d)
	}
	times := map[string]int{}
	for _, d := range all {
		if !isReplay(d) {
			t.Errorf("%s lacks x-router-replay=true", d.MessageId)
		}
		times[d.MessageId]++
	}
	for _, want := range ids("o", n) {
		if times[want] == 0 {
			t.Errorf("%s was never replayed: %s", want, describe(all))
		}
	}
	// The resumed job went on after what the first run had confirmed, give or take what was
	// in flight or confirmed in its last moments: it did not deliver the first ones again.
	if times["o-1"] != 1 || len(all) >= n+len(first) {
		t.Errorf("the resumed job started over: o-1 %d times, %d deliveries for %d events: %s", times["o-1"], len(all), n, describe(all))
	}
	// Each run delivers in log order. The first run may have delivered a few more after the
	// ones taken (in flight when it stopped), and the resumed job starts again after what was
	// confirmed, which can lie before those: the seqs may step back once, where the resumed
	// job's deliveries begin (seen on a loaded machine: o-13, o-14, then o-13, o-14, o-15...).
	var resumed []amqp.Delivery
	for _, d := range all[len(first):] {
		if seqOf(d) > seqOf(first[len(first)-1]) {
			resumed = append(resumed, d)
		}
	}
	back := 0
	for i := 1; i < len(resumed); i++ {
		if seqOf(resumed[i]) <= seqOf(resumed[i-1]) {
			back++
		}
	}
	if back > 1 {
		t.Fatalf("resumed deliveries out of log order (%d steps back, want at most 1): %s", back, describe(resumed))
	}
}

// A replay running inside a router that stops is resumed, through the admin API, by the
// router started again.
func TestReplayResumesInARestartedRouter(t *testing.T) {
	const n = 40
	w := newWorld(t)
	out := w.bind(w.out)
	path := w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute)
	r := w.startRouter(path)
	w.publish("order.x", ids("o", n)...)
	out.take(n, waitMsgs)
	r.waitDelivered(t, n)

	id, err := r.Engine.StartReplay(context.Background(), router.ReplayRequest{Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	first := out.take(12, waitMsgs)
	r.stop()

	r = w.startRouter(path)
	cliCfg := w.writeConfig("cli.hcl", r.Admin, oneRoute)
	res := cli(t, "replay", "-c", cliCfg, "--resume", id)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "replayed ") || !strings.Contains(res.stderr, "router at "+r.Admin) {
		t.Fatalf("resume: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkResumed(t, w, out, first, n)
	res = cli(t, "replay", "-c", cliCfg, "--resume", id)
	if res.code == 0 || !strings.Contains(res.stderr, "no unfinished replay") {
		t.Errorf("resuming a finished job: exit %d, stderr: %s", res.code, res.stderr)
	}
}
