package exepages

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

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
	exe, ms := exeMappings(t)
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

func TestEvictDropsTheExecutablesPagesFromThePageCache(t *testing.T) {
	if !kernelPagesOut(t) {
		t.Skip("this kernel has no MADV_PAGEOUT")
	}
	written, zeroed = 44, 45
	exe, ms := exeMappings(t)
	// The linker has just written the test binary: pages not yet written back are dirty, and
	// only clean pages can be dropped.
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, m := range ms {
		size += int64(m.end - m.start)
		// Every page in the page cache and mapped, as after a start-up that touched it all.
		if errno := madvise(m.start, m.end, unix.MADV_POPULATE_READ); errno != 0 {
			t.Fatal(errno)
		}
	}
	cachedBefore := cachedPages(t, ms)

	n, err := Evict()
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("Evict advised %d bytes, the read-only mappings hold %d", n, size)
	}
	// What the test runs meanwhile comes back, one page at a time; some pages the kernel may
	// keep (the race detector's binary kept about half of them): far fewer than all of them
	// are left.
	cachedAfter := cachedPages(t, ms)
	if cachedAfter > cachedBefore*3/4 {
		t.Errorf("pages of the executable in the page cache: %d before Evict, %d after", cachedBefore, cachedAfter)
	}
	if kib := residentKiB(t, exe); kib > size/1024/2 {
		t.Errorf("%d KiB of the executable's %d KiB of read-only mappings resident after Evict", kib, size/1024)
	}
	if random := randomReadMappings(t, exe); random != len(ms) {
		t.Errorf("%d of the %d read-only mappings marked as read at random", random, len(ms))
	}
	if written != 44 || zeroed != 45 {
		t.Errorf("the data section lost what the process wrote: %d, %d", written, zeroed)
	}
}

// kernelPagesOut reports whether madvise knows MADV_PAGEOUT (Linux 5.4 and later).
func kernelPagesOut(t *testing.T) bool {
	t.Helper()
	b, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	return unix.Madvise(b, unix.MADV_PAGEOUT) == nil
}

// cachedPages counts the pages of ms that are in the page cache (mincore).
func cachedPages(t *testing.T, ms []mapping) int {
	t.Helper()
	page := uintptr(os.Getpagesize())
	n := 0
	for _, m := range ms {
		vec := make([]byte, (m.end-m.start+page-1)/page)
		// The range comes from the kernel's list of mappings, not from a Go pointer.
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, m.start, m.end-m.start, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatal(errno)
		}
		for _, v := range vec {
			n += int(v & 1)
		}
	}
	return n
}

// randomReadMappings counts the executable's read-only mappings whose VmFlags in
// /proc/self/smaps carry rr (MADV_RANDOM).
func randomReadMappings(t *testing.T, exe string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	n, in := 0, false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.Contains(f[0], "-") {
			in = len(parseMaps(line, exe)) == 1
			continue
		}
		if in && len(f) > 0 && f[0] == "VmFlags:" && slices.Contains(f[1:], "rr") {
			n++
		}
	}
	return n
}

// exeMappings returns the test binary's path and its read-only mappings, as Release and Evict
// find them.
func exeMappings(t *testing.T) (string, []mapping) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return exe, parseMaps(string(maps), exe)
}
