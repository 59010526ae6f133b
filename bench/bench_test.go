package bench

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

func TestReadProcSeesOwnCPUAndMemory(t *testing.T) {
	before, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until /proc shows it (its unit is 10ms).
	deadline := time.Now().Add(5 * time.Second)
	var after ProcSample
	for x := 0; time.Now().Before(deadline); {
		for i := range 1_000_000 {
			x += i * x
		}
		if after, err = ReadProc(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if after.CPU > before.CPU {
			break
		}
	}
	if after.CPU <= before.CPU {
		t.Errorf("CPU did not grow: %v then %v", before.CPU, after.CPU)
	}
	if after.Anon <= 0 || after.RSS < after.Anon || after.Peak < after.RSS {
		t.Errorf("anonymous RSS %d, RSS %d, peak %d: want 0 < anonymous <= RSS <= peak", after.Anon, after.RSS, after.Peak)
	}
}

func TestReadMappedRSSFindsTheExecutableAndAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer syscall.Munmap(m)
	sum := 0
	for i := 0; i < len(m); i += 4096 {
		sum += int(m[i])
	}
	got, err := ReadMappedRSS(os.Getpid(), ".db")
	if err != nil {
		t.Fatal(err)
	}
	if got.Exe <= 0 || got.Log < int64(len(data))/2 || got.Log > int64(len(data)) {
		t.Errorf("executable %d bytes, the mapped file %d bytes resident (sum %d); want both, the file about %d", got.Exe, got.Log, sum, len(data))
	}
}

func TestReadProcOfMissingProcess(t *testing.T) {
	if _, err := ReadProc(1 << 30); err == nil {
		t.Error("ReadProc of a pid that cannot exist succeeded")
	}
}

func TestFindBrokerFindsTheListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pid, err := FindBroker(l.Addr().(*net.TCPAddr).Port)
	if err != nil || pid != os.Getpid() {
		t.Errorf("FindBroker = %d, %v; want this process, %d", pid, err, os.Getpid())
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if _, err := FindBroker(port); !errors.Is(err, ErrNoBroker) {
		t.Errorf("FindBroker of a closed port: %v, want ErrNoBroker", err)
	}
}

func TestSystemCPU(t *testing.T) {
	busy, total, err := SystemCPU()
	if err != nil {
		t.Fatal(err)
	}
	if busy <= 0 || total < busy {
		t.Errorf("busy %v, total %v: want 0 < busy <= total", busy, total)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 50, 3 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 100, 5 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 0, 1 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

func TestParseModuleConfig(t *testing.T) {
	m, err := ParseModuleConfig("min_amount=100,mode=a=b")
	if err != nil || len(m) != 2 || m["min_amount"] != "100" || m["mode"] != "a=b" {
		t.Errorf("got %v, %v", m, err)
	}
	if _, err := ParseModuleConfig("novalue"); err == nil {
		t.Error("want an error for an entry without =")
	}
}

func TestMessageHasTheRequestedSize(t *testing.T) {
	for _, size := range []int{64, 1024, 4096} {
		_, p := Message("run", 12345, size)
		if len(p.Body) != size {
			t.Errorf("size %d: body is %d bytes", size, len(p.Body))
		}
	}
}

// The generated configurations must be ones the router accepts, with the values asked for.
func TestRouterConfigLoads(t *testing.T) {
	dir := t.TempDir()
	topo := NewTopology("test")
	tests := []struct {
		name string
		cfg  RouterConfig
	}{
		{"plain", RouterConfig{}},
		{"wasm", RouterConfig{Filter: "/m/f.wasm", Transform: "/m/t.wasm", ModuleConfig: map[string]string{"min_amount": "100", "b": "${x}"}}},
		{"all", RouterConfig{SecondURL: "amqp://guest:guest@127.0.0.1:5672/dr"}},
		{"traced", RouterConfig{TracingEndpoint: "http://127.0.0.1:14318"}},
		{"stream", RouterConfig{Stream: &StreamStore{Stream: "bench.log"}}},
		{"stream-cluster", RouterConfig{Stream: &StreamStore{URL: "amqp://guest:guest@127.0.0.1:5673/", Stream: "bench.log", Takeover: "5s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.URL, c.AdminAddr, c.Prefetch, c.Topology = "amqp://guest:guest@127.0.0.1:5672/", "127.0.0.1:19464", 1000, topo
			if c.Stream == nil {
				c.StorePath = filepath.Join(dir, "data", "${HOME}", "router.db")
			}
			got, diags := config.LoadBytes([]byte(c.HCL()), filepath.Join(dir, "router.hcl"), nil)
			if diags.HasErrors() {
				t.Fatalf("%s\n%s", diags.Error(), c.HCL())
			}
			if got.Store.Path != c.StorePath || got.Router.AdminAddr != c.AdminAddr {
				t.Errorf("store path %q, admin addr %q", got.Store.Path, got.Router.AdminAddr)
			}
			if s := c.Stream; s != nil {
				wantCluster := "main"
				if s.URL != "" {
					wantCluster = "log"
				}
				if got.Store.Backend != config.BackendStream || got.Store.Stream != s.Stream || got.Store.Cluster != wantCluster {
					t.Errorf("store %+v, want the stream %s on cluster %s", got.Store, s.Stream, wantCluster)
				}
			}
			src := got.Sources[0]
			if src.Queue != topo.SourceQueue || src.Exchange != topo.SourceExchange || src.Prefetch != 1000 {
				t.Errorf("source %+v", src)
			}
			target := got.Targets[0]
			wantMode, wantClusters := config.ModeSingle, 1
			if c.SecondURL != "" {
				wantMode, wantClusters = config.ModeAll, 2
			}
			if target.Exchange != topo.TargetExchange || target.Mode != wantMode || len(target.Clusters) != wantClusters {
				t.Errorf("target %+v", target)
			}
			if c.TracingEndpoint != "" {
				if tr := got.Tracing; tr == nil || tr.Endpoint != c.TracingEndpoint+"/v1/traces" || tr.SampleRatio != 1 {
					t.Errorf("tracing %+v", tr)
				}
			} else if got.Tracing != nil {
				t.Errorf("tracing block in a configuration without tracing: %+v", got.Tracing)
			}
			route := got.Routes[0]
			if len(route.Filters) != btoi(c.Filter != "") || len(route.Transforms) != btoi(c.Transform != "") {
				t.Errorf("route filters %v, transforms %v", route.Filters, route.Transforms)
			}
			for _, m := range got.Modules {
				if m.Config["b"] != "${x}" || m.Config["min_amount"] != "100" {
					t.Errorf("module %s config %v", m.Name, m.Config)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// buildBinary builds a command of this module into a temporary directory.
func buildBinary(tb testing.TB, pkg string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// buildBaseline builds the plain amqp091-go loop against upstream amqp091-go, as
// scripts/build-baseline.sh does for the benchmark runs.
func buildBaseline(tb testing.TB) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "baseline")
	cmd := exec.Command("../scripts/build-baseline.sh", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("scripts/build-baseline.sh: %v\n%s", err, msg)
	}
	return out
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
