package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/adminapi"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

type configInfo struct {
	Generation int    `json:"generation"`
	File       string `json:"file"`
	Hash       string `json:"hash"`
	Reloads    []struct {
		Trigger string   `json:"trigger"`
		Result  string   `json:"result"`
		Changes []string `json:"changes"`
	} `json:"reloads"`
}

func getConfigInfo(t testing.TB, admin string) configInfo {
	t.Helper()
	code, body, err := adminapi.Get(admin, "/api/v1/config")
	if err != nil || code != 200 {
		t.Fatalf("GET /api/v1/config: %d %v %s", code, err, body)
	}
	var info configInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// The router binary reloads on SIGHUP (which used to kill it) and on `router reload` (a process
// without --watch, so that nothing else reloads it), then, restarted with --watch, when the file
// changes; each new route delivers what arrives after it.
func TestReloadProcessTriggers(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	admin := freeAddr(t)
	srcX, srcQ := sourceNames(t)
	targets := map[string]string{}
	base := processConfig(admin) + clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ)
	collectors := map[string]*collector{}
	for _, name := range []string{"a", "b", "c", "d"} {
		x := rabbit.Unique("e2e.hup." + name)
		targets[name] = targetQueue(t, x)
		base += targetBlock(name, "main", x)
		collectors[name] = collect(t, targets[name])
	}
	route := func(name, target string) string {
		return "route " + hclString(name) + " {\n  source  = \"in\"\n  targets = [" + hclString(target) + "]\n}\n"
	}
	routes := route("ra", "a")
	path := writeConfig(t, dir, base+routes)
	// Without --watch first: a reload can only come from the signal or the command.
	p := startProcess(t, path, admin)

	step := 0
	check := func(what, target string) {
		t.Helper()
		step++
		msgs, ids := numbered("s"+string(rune('a'+step)), "k", 10)
		mustPublish(t, srcX, msgs...)
		collectors[target].waitIDs(t, what, ids, 30*time.Second)
	}
	waitGeneration := func(what string, gen int) configInfo {
		t.Helper()
		var info configInfo
		waitFor(t, 30*time.Second, func() bool {
			info = getConfigInfo(t, admin)
			return info.Generation == gen
		}, func() string { return what + ": generation never reached; router output:\n" + p.out.Tail(30) })
		return info
	}
	check("route ra, generation 1", "a")

	// SIGHUP.
	routes += route("rb", "b")
	writeConfigQuiet(t, path, base+routes, p)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	info := waitGeneration("after SIGHUP", 2)
	if last := info.Reloads[len(info.Reloads)-1]; last.Trigger != "signal" || last.Result != "applied" {
		t.Errorf("reload history after SIGHUP: %+v", info.Reloads)
	}
	check("route rb, after SIGHUP", "b")

	// router reload through the admin API, with a dry run first.
	routes += route("rc", "c")
	writeConfigQuiet(t, path, base+routes, p)
	code, stdout, stderr := runCLI(t, dir, "reload", "-c", path, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "would apply generation 3") {
		t.Errorf("router reload --dry-run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, dir, "reload", "-c", path)
	if code != 0 || !strings.Contains(stdout, "generation 3") {
		t.Errorf("router reload: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	waitGeneration("after router reload", 3)
	check("route rc, after router reload", "c")

	// A refused reload through the command: diagnostics, exit 1, generation kept.
	writeConfigQuiet(t, path, base+routes+"route \"bad\" {\n  source = \"nowhere\"\n  targets = [\"a\"]\n}\n", p)
	code, _, stderr = runCLI(t, dir, "reload", "-c", path)
	if code != 1 || !strings.Contains(stderr, "router.hcl:") || !strings.Contains(stderr, "error:") {
		t.Errorf("router reload of a bad file: exit %d, stderr %s", code, stderr)
	}
	check("route rc, after a refused reload", "c")

	if status := p.terminate(t, 30*time.Second); status != 0 {
		t.Errorf("exit status %d after SIGTERM", status)
	}
	p.checkNoRace(t)

	// --watch: the file as it is (generation 1 of a new process), then a write to it.
	writeConfigQuiet(t, path, base+routes, p)
	p = startProcess(t, path, admin, "--watch")
	waitGeneration("after the restart", 1)
	routes += route("rd", "d")
	writeConfigQuiet(t, path, base+routes, p)
	info = waitGeneration("after the file changed under --watch", 2)
	if last := info.Reloads[len(info.Reloads)-1]; last.Trigger != "watch" || last.Result != "applied" {
		t.Errorf("reload history under --watch: %+v", info.Reloads)
	}
	check("route rd, after --watch", "d")
	if status := p.terminate(t, 30*time.Second); status != 0 {
		t.Errorf("exit status %d after SIGTERM", status)
	}
	p.checkNoRace(t)
	for _, c := range collectors {
		if d := c.duplicates(); len(d) > 0 {
			t.Errorf("%s got messages twice: %v", c.queue, sample(countKeys(d)))
		}
	}
}

// writeConfigQuiet replaces the configuration file whole (as an editor saving it does).
func writeConfigQuiet(t testing.TB, path, src string, p *process) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
