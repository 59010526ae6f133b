package exepages

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// written lives in the executable's data section; released must not bring back its initial
// value. zeroed lives in the bss.
var (
	written = 1
	zeroed  int
)

func TestReleaseLetsGoOfTheExecutablesPagesAndKeepsItsData(t *testing.T) {
	written, zeroed = 42, 43
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	ms := parseMaps(string(maps), exe)
	if len(ms) == 0 {
		t.Fatalf("no read-only mapping of %s in /proc/self/maps", exe)
	}
	// Map every page of the read-only mappings (MADV_POPULATE_READ), so that all of them are
	// resident.
	for _, m := range ms {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_POPULATE_READ); errno != 0 {
			t.Fatal(errno)
		}
	}
	before := residentKiB(t, exe)

	n, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := residentKiB(t, exe)
	var size int64
	for _, m := range ms {
		size += int64(m.end - m.start)
	}
	if n != size {
		t.Errorf("Release advised %d bytes, the read-only mappings hold %d", n, size)
	}
	if before < size/1024*9/10 || after > before*3/4 {
		t.Errorf("resident read-only pages of the executable: %d KiB after touching %d KiB, %d KiB after Release", before, size/1024, after)
	}
	if written != 42 || zeroed != 43 {
		t.Errorf("the data section lost what the process wrote: %d, %d", written, zeroed)
	}
}

// residentKiB adds up Rss of the executable's mappings that are not writable, from
// /proc/self/smaps.
func residentKiB(t *testing.T, exe string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.Contains(f[0], "-") {
			in = len(parseMaps(line, exe)) == 1
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kib
		}
	}
	return total
}
