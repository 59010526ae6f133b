package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// listenForTest starts the real server (Listen and Serve, with its limits) on a free port.
func listenForTest(t *testing.T, maxConns int) *Server {
	t.Helper()
	s, err := Listen(Options{Addr: "127.0.0.1:0", Engine: fakeEngine{ready: true}, Gatherer: prometheus.NewRegistry(), MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

// shortTimeouts shortens the server's timeouts for one test.
func shortTimeouts(t *testing.T) {
	saved := []time.Duration{readHeaderTimeout, readTimeout, writeTimeout, idleTimeout}
	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout = 300*time.Millisecond, 500*time.Millisecond, time.Second, 500*time.Millisecond
	t.Cleanup(func() {
		readHeaderTimeout, readTimeout, writeTimeout, idleTimeout = saved[0], saved[1], saved[2], saved[3]
	})
}

// healthz answers /healthz on a new connection within a second, or an error.
func healthz(addr string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestIdleConnectionsDoNotExhaustTheServer holds many idle keep-alive connections, more than
// the limit: /healthz still answers, because idle connections make room for new ones.
func TestIdleConnectionsDoNotExhaustTheServer(t *testing.T) {
	s := listenForTest(t, 8)
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// One request, then the connection stays open and idle.
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if n := s.conns.open(); n > 8 {
		t.Errorf("%d connections open, want at most 8", n)
	}
	if err := healthz(s.Addr()); err != nil {
		t.Fatalf("/healthz with 20 idle connections held: %v", err)
	}
}

// TestSlowClientsAreCutOff: a client that never finishes its headers, one that never sends
// the body it announced, and an idle one are all disconnected by the server.
func TestSlowClientsAreCutOff(t *testing.T) {
	shortTimeouts(t)
	s := listenForTest(t, 0)
	cases := map[string]string{
		"slow headers": "GET /healthz HTTP/1.1\r\nHost: x\r\n",
		"slow body":    "POST /api/v1/replay HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
		"idle":         "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for name, request := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, request); err != nil {
				t.Fatal(err)
			}
			// The server must close the connection well before this deadline.
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept the connection open")
			}
		})
	}
}
