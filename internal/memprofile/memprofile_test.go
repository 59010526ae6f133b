package memprofile

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The test binary imports the package too: its init decided the rate of this process. The
// test runs itself again with GODEBUG set either way and reads the rate the child saw.
func TestSamplingIsOffUnlessGODEBUGAsks(t *testing.T) {
	if os.Getenv("MEMPROFILE_CHILD") == "1" {
		os.Stdout.WriteString("rate=" + strconv.Itoa(runtime.MemProfileRate) + "\n")
		return
	}
	for godebug, want := range map[string]string{
		"":                           "rate=0",
		"gctrace=0":                  "rate=0",
		"memprofilerate=4096":        "rate=4096",
		"gctrace=0,memprofilerate=1": "rate=1",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSamplingIsOffUnlessGODEBUGAsks$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MEMPROFILE_CHILD=1", "GODEBUG="+godebug)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("GODEBUG=%q: %v: %s", godebug, err, out)
		}
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("GODEBUG=%q: want %s, the child said: %s", godebug, want, out)
		}
	}
}
