package tcpproxy

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// echoServer answers every line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends a line and reads it back.
func roundTrip(c net.Conn, line string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

// waitClosed reads until the peer closes the connection.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 16)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection still open")
		}
		return
	}
}

func TestForwards(t *testing.T) {
	p := Start(t, echoServer(t))
	c := dial(t, p.Addr())
	for _, line := range []string{"hello", "world"} {
		got, err := roundTrip(c, line)
		if err != nil || got != line {
			t.Fatalf("round trip %q: got %q, %v", line, got, err)
		}
	}
}

func TestCutAndRestore(t *testing.T) {
	p := Start(t, echoServer(t))
	live := dial(t, p.Addr())
	if _, err := roundTrip(live, "before"); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	waitClosed(t, live)

	refused := dial(t, p.Addr())
	waitClosed(t, refused)

	p.Restore()
	again := dial(t, p.Addr())
	if got, err := roundTrip(again, "after"); err != nil || got != "after" {
		t.Fatalf("after restore: got %q, %v", got, err)
	}
}

func TestLatency(t *testing.T) {
	p := Start(t, echoServer(t))
	c := dial(t, p.Addr())
	const d = 100 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	if _, err := roundTrip(c, "slow"); err != nil {
		t.Fatal(err)
	}
	// Delayed once each way.
	if rtt := time.Since(start); rtt < 2*d {
		t.Fatalf("round trip took %v, want at least %v", rtt, 2*d)
	}
	p.SetLatency(0)
	start = time.Now()
	if _, err := roundTrip(c, "fast"); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt >= d {
		t.Fatalf("round trip without latency took %v", rtt)
	}
}

func TestLatencyKeepsThroughput(t *testing.T) {
	p := Start(t, echoServer(t))
	c := dial(t, p.Addr())
	p.SetLatency(50 * time.Millisecond)
	// Twenty pipelined lines arrive together, one latency later, not twenty latencies later.
	start := time.Now()
	go func() {
		for range 20 {
			_, _ = io.WriteString(c, "x\n")
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	for range 20 {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("20 pipelined lines took %v", took)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	upstream := echoServer(t)
	before := runtime.NumGoroutine()
	p := Start(t, upstream)
	for range 5 {
		c := dial(t, p.Addr())
		if _, err := roundTrip(c, "x"); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
	// The echo server's handlers end when the proxy closes its upstream connections.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d after Close, %d before Start", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Close() // idempotent
}
