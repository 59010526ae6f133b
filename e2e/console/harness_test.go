// Package console tests the web console in headless Chromium (driven with chromedp) against a
// router running in this process and the real broker. Each test saves screenshots under bin/
// at the repository's root, for a person to look at. Under -short the tests are skipped;
// otherwise a missing Chromium fails them (scripts/setup.sh installs it).
package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// browserTimeout bounds one test's whole browser session.
var browserTimeout = 90 * time.Second

// chromiumPath finds the browser; the test fails without one (it is not optional in CI).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found (chromium, chromium-browser, google-chrome): scripts/setup.sh installs the chromium package; -short skips these tests")
	return ""
}

// world is one test's router, broker names and browser.
type world struct {
	t        testing.TB
	router   *inproc.Router
	base     string // http://admin
	token    string
	names    names
	conn     *amqp.Connection
	ch       *amqp.Channel
	ctx      context.Context
	problems *browserLog
}

// names are the test's unique exchanges and queues.
type names struct {
	source, sourceQueue, a, b, parked string
}

// routerConfig: "orders" takes order.* to a and b; "eu" keeps payment.# events whose region
// header is eu (a C guest) and sends them to b; "parked" sends parked.# to an exchange nothing
// is bound to, so that every event there is refused and dead-lettered at once.
const routerConfig = `
router {
  admin_addr  = "127.0.0.1:0"
  admin_token = %q
}
%s
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
target "b" {
  cluster  = "main"
  exchange = %q
}
target "parked" {
  cluster  = "main"
  exchange = %q
}
module "eu_only" {
  path   = %q
  config = { header = "region", value = "eu" }
}
route "orders" {
  source  = "in"
  match   = ["order.*"]
  targets = ["a", "b"]
}
route "eu" {
  source  = "in"
  match   = ["payment.#"]
  filters = ["eu_only"]
  targets = ["b"]
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

// repoRoot is two levels up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// newWorld starts a router (with token, when not empty) and a browser.
func newWorld(t testing.TB, token string) *world {
	t.Helper()
	return newWorldStore(t, token, fmt.Sprintf("store { path = %q }", filepath.Join(t.TempDir(), "router.db")))
}

// newWorldStore is newWorld with the given store block.
func newWorldStore(t testing.TB, token, store string) *world {
	t.Helper()
	rabbit.SkipIfShort(t)
	chrome := chromiumPath(t)
	n := names{
		source: rabbit.Unique("console.in"), sourceQueue: rabbit.Unique("console.router"),
		a: rabbit.Unique("console.a"), b: rabbit.Unique("console.b"), parked: rabbit.Unique("console.parked"),
	}
	for _, x := range []string{n.source, n.a, n.b, n.parked} {
		rabbit.DeleteExchangeAtCleanup(t, x)
	}
	rabbit.DeleteQueueAtCleanup(t, n.sourceQueue)
	module := filepath.Join(repoRoot(t), "examples", "wasm", "keyfilter", "keyfilter.wasm")
	src := fmt.Sprintf(routerConfig, token, store, rabbit.URL(),
		n.source, n.sourceQueue, n.a, n.b, n.parked, module)
	// On disk, as a running router's always is: a reload reads it again.
	path := filepath.Join(t.TempDir(), "router.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := inproc.LoadFile(t, path)
	r := inproc.Start(t, cfg, inproc.Options{})
	r.WaitReady(t, 30*time.Second)
	w := &world{t: t, router: r, base: "http://" + r.Admin, token: token, names: n}
	w.conn = rabbit.Dial(t)
	w.ch = rabbit.Channel(t, w.conn)
	// Queues on a and b, so that deliveries there are routed (and confirmed, not refused).
	rabbit.DeclareTargetQueueBound(t, w.ch, n.a, "#")
	rabbit.DeclareTargetQueueBound(t, w.ch, n.b, "#")
	w.startBrowser(chrome)
	return w
}

// browserLog gathers what the page must never do: log errors, throw, open dialogs, or have
// the Content-Security-Policy block something (which only happens when markup got in).
type browserLog struct {
	mu       sync.Mutex
	problems []string
	// allow401 lets the browser's own note of a 401 answer pass: the token prompt test
	// provokes one on purpose.
	allow401 bool
	// allowed are notes of the browser's that a test expects (substrings).
	allowed []string
}

func (b *browserLog) expected(text string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.allowed {
		if strings.Contains(text, a) {
			return true
		}
	}
	return b.allow401 && strings.Contains(text, "401")
}

// allow lets the browser note a failed request for path (an endpoint this router lacks).
func (b *browserLog) allow(path string) {
	b.mu.Lock()
	b.allowed = append(b.allowed, path)
	b.mu.Unlock()
}

func (b *browserLog) add(format string, args ...any) {
	b.mu.Lock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

func (b *browserLog) list() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// watchScript runs before any of the console's own: it records CSP violations and any call
// of alert, confirm or prompt, which hostile contents would try.
const watchScript = `
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
window.__dialogs = 0;
for (const f of ["alert", "confirm", "prompt"]) { const orig = window[f]; window[f] = function () { window.__dialogs++; return orig.apply(this, arguments); }; }
`

func (w *world) startBrowser(chrome string) {
	t := w.t
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // tests may run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp notes events of newer Chromium versions it does not know; they are harmless.
	quiet := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled") {
			t.Logf("chromedp: %s", msg)
		}
	}
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithErrorf(quiet), chromedp.WithLogf(quiet))
	ctx, cancelTimeout := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	w.ctx = ctx
	w.problems = &browserLog{allow401: w.token != ""}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeWarning {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				w.problems.add("console %s: %s", e.Type, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			w.problems.add("exception: %s", e.ExceptionDetails.Error())
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError && !w.problems.expected(e.Entry.Text+" "+e.Entry.URL) {
				w.problems.add("browser log: %s %s", e.Entry.Text, e.Entry.URL)
			}
		case *page.EventJavascriptDialogOpening:
			w.problems.add("a dialog opened: %q", e.Message)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(false)) }()
		}
	})
	if err := chromedp.Run(ctx, log.Enable(), runtime.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(watchScript).Do(ctx)
		return err
	})); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
}

// run runs browser actions, failing the test on error.
func (w *world) run(what string, actions ...chromedp.Action) {
	w.t.Helper()
	if err := chromedp.Run(w.ctx, actions...); err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
}

// open loads a console address and waits for the view to be filled.
func (w *world) open(path, ready string) {
	w.t.Helper()
	w.run("open "+path, chromedp.Navigate(w.base+path), chromedp.WaitVisible(ready, chromedp.ByQuery))
}

// eval evaluates a JavaScript expression into out.
func (w *world) eval(expr string, out any) {
	w.t.Helper()
	w.run("evaluate "+expr, chromedp.Evaluate(expr, out))
}

// waitFor evaluates expr until it is true, failing after timeout with what last evaluated.
func (w *world) waitFor(what, expr string, timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		if err := chromedp.Run(w.ctx, chromedp.Evaluate(expr, &ok)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var text string
			_ = chromedp.Run(w.ctx, chromedp.Evaluate(`document.getElementById("view").innerText.slice(0, 2000)`, &text))
			w.t.Fatalf("%s: not true after %s: %s\npage: %s", what, timeout, expr, text)
		}
		time.Sleep(100 * time.Millisecond) // the page updates on its own timers
	}
}

// screenshot saves the page as bin/console-NAME.png.
func (w *world) screenshot(name string) {
	w.t.Helper()
	var png []byte
	w.run("screenshot "+name, chromedp.FullScreenshot(&png, 90))
	dir := filepath.Join(repoRoot(w.t), "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// checkClean fails the test if the browser logged errors, threw, opened a dialog or blocked
// anything under the Content-Security-Policy.
func (w *world) checkClean() {
	w.t.Helper()
	var extra struct {
		Violations []string `json:"violations"`
		Dialogs    int      `json:"dialogs"`
	}
	w.eval(`({violations: window.__violations || [], dialogs: window.__dialogs || 0})`, &extra)
	problems := w.problems.list()
	for _, v := range extra.Violations {
		problems = append(problems, "CSP violation: "+v)
	}
	if extra.Dialogs > 0 {
		problems = append(problems, fmt.Sprintf("%d dialog calls", extra.Dialogs))
	}
	if len(problems) > 0 {
		w.t.Errorf("the browser reported problems:\n%s", strings.Join(problems, "\n"))
	}
}

// publish sends messages to the source exchange, confirmed.
func (w *world) publish(key string, msgs ...amqp.Publishing) {
	w.t.Helper()
	rabbit.PublishConfirmed(w.t, w.ch, w.names.source, key, msgs...)
}

// api reads an admin API path into out, with the token.
func (w *world) api(path string, out any) int {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.base+path, nil)
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			w.t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

// waitSettled waits until the log holds n events and every stream has passed them.
func (w *world) waitSettled(n uint64) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := w.router.Engine.Status()
		settled := st.Store.LastSeq >= n
		for _, s := range st.Streams {
			settled = settled && s.Position >= n
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("not settled at %d events after 30s: %+v", n, st)
		}
		time.Sleep(20 * time.Millisecond) // the engine settles on its own
	}
}

// clickMode shows an event's body in a mode (text, json, hex).
func clickMode(mode string) chromedp.Action {
	return chromedp.Click(`button[data-mode="`+mode+`"]`, chromedp.ByQuery)
}
