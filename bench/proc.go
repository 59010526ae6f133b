package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNoBroker reports that no RabbitMQ process was found in /proc.
var ErrNoBroker = errors.New("bench: broker process not found")

// userHZ is the unit of the CPU times in /proc (USER_HZ, 100 on every Linux ABI Go runs on).
const userHZ = 100

// ProcSample is what /proc says of a process at one moment.
type ProcSample struct {
	CPU  time.Duration // user + system time since it started, all threads
	RSS  int64         // resident set size, bytes
	Peak int64         // peak resident set size (VmHWM), bytes
	// Anon is the anonymous part of RSS (heap, stacks); the rest is mostly file pages mapped
	// into memory, such as the router's bbolt log, which the kernel can drop at will.
	Anon int64
	// IOCalls counts read and write system calls (syscr + syscw of /proc/PID/io: sockets
	// and files, every thread); Switches counts context switches (voluntary and not, summed
	// over the threads alive): both grow with wake-ups and small writes, whatever the load
	// on the machine, where CPU time does not. Voluntary is the part of Switches where a
	// thread blocked (a goroutine hand-off that left it idle, a wait for I/O): the
	// involuntary rest grows with the other load on the machine, this part much less.
	IOCalls, Switches, Voluntary int64
}

// ReadProc samples process pid.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	// The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("bench: /proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return s, fmt.Errorf("bench: /proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
	}
	s.CPU = time.Duration(utime+stime) * time.Second / userHZ

	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch name {
		case "VmRSS":
			s.RSS = parseKB(value)
		case "VmHWM":
			s.Peak = parseKB(value)
		case "RssAnon":
			s.Anon = parseKB(value)
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	s.IOCalls = ioCalls(pid)
	s.Switches, s.Voluntary = switches(pid)
	return s, nil
}

// ioCalls is syscr + syscw of /proc/PID/io, 0 when it cannot be read (another user's process).
func ioCalls(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(string(data), "\n") {
		name, value, _ := strings.Cut(line, ":")
		if name == "syscr" || name == "syscw" {
			v, _ := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			n += v
		}
	}
	return n
}

// switches sums the context switches of the process's threads, all and voluntary.
func switches(pid int) (n, voluntary int64) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			name, value, _ := strings.Cut(line, ":")
			if name == "voluntary_ctxt_switches" || name == "nonvoluntary_ctxt_switches" {
				v, _ := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
				n += v
				if name == "voluntary_ctxt_switches" {
					voluntary += v
				}
			}
		}
	}
	return n, voluntary
}

// parseKB parses a /proc/PID/status size such as "  12345 kB" into bytes.
func parseKB(v string) int64 {
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}

// SystemCPU is the machine's CPU time so far, from the first line of /proc/stat: busy is
// everything but idle and iowait; total includes them.
func SystemCPU() (busy, total time.Duration, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, errors.New("bench: /proc/stat: unexpected format")
	}
	var ticks [10]int64
	for i := 1; i < len(f) && i <= len(ticks); i++ {
		ticks[i-1], _ = strconv.ParseInt(f[i], 10, 64)
	}
	// user nice system idle iowait irq softirq steal (guest times are already in user).
	var b, t int64
	for i, v := range ticks[:8] {
		t += v
		if i != 3 && i != 4 {
			b += v
		}
	}
	tick := time.Second / userHZ
	return time.Duration(b) * tick, time.Duration(t) * tick, nil
}

// BrokerPort is the TCP port of an AMQP URL.
func BrokerPort(url string) (int, error) {
	u, err := amqp.ParseURI(url)
	if err != nil {
		return 0, fmt.Errorf("bench: broker URL: %w", err)
	}
	return u.Port, nil
}

// FindBroker returns the pid of the process listening on the broker's TCP port (several
// RabbitMQ nodes may run on one machine), read from /proc/net/tcp{,6} and /proc/PID/fd.
func FindBroker(port int) (int, error) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("%w: nothing listens on port %d here", ErrNoBroker, port)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && inodes[link] {
			return strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(fd))))
		}
	}
	return 0, fmt.Errorf("%w: no process owns the socket listening on port %d (not root?)", ErrNoBroker, port)
}

// MappedRSS splits a process's resident set by what is mapped (/proc/PID/smaps): the
// executable's own file, files whose name ends in logSuffix (the event log), and the rest of
// the file mappings (shared libraries). Anonymous memory is ProcSample.Anon.
type MappedRSS struct {
	Exe, Log, OtherFiles int64
}

// ReadMappedRSS reads /proc/PID/smaps.
func ReadMappedRSS(pid int, logSuffix string) (MappedRSS, error) {
	var m MappedRSS
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return m, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	var into *int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Rss:") {
			if into != nil {
				*into += parseKB(strings.TrimPrefix(line, "Rss:"))
			}
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 5 || !strings.Contains(fields[0], "-") || strings.HasSuffix(fields[0], ":") {
			continue // an attribute line
		}
		into = nil
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") {
			continue // anonymous, stack, vdso: counted in RssAnon
		}
		switch path := strings.Join(fields[5:], " "); {
		case path == exe:
			into = &m.Exe
		case strings.HasSuffix(path, logSuffix):
			into = &m.Log
		default:
			into = &m.OtherFiles
		}
	}
	return m, sc.Err()
}
